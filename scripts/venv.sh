# Sourced by demo.sh and test.sh: create .venv once and install rds-backup into it. Every
# failure says what failed and what to do; nothing is hidden behind >/dev/null, since a quiet
# exit 1 is what a newcomer without python3-venv used to get.
#
# ensure_venv SPEC MARKER: SPEC is pip's target ('.' or '.[test]'); MARKER a program the
# install puts in .venv/bin, absent until the first install has completed.

ensure_venv() {
    local spec=$1 marker=$2 created=""
    if [ ! -x .venv/bin/python ]; then
        if ! command -v python3 >/dev/null; then
            echo "error: python3 is not on PATH; rds-backup needs Python 3.11 or newer" >&2
            return 1
        fi
        if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            echo "error: $(command -v python3) is Python $(python3 -c 'import sys; print(sys.version.split()[0])'); rds-backup needs 3.11 or newer" >&2
            return 1
        fi
        [ -e .venv ] || created=1
        echo "creating .venv with $(command -v python3) (first run only)..." >&2
        if ! python3 -m venv .venv; then
            # Debian's python3 without python3-venv leaves a .venv with no pip behind: remove
            # what this run made, so the next run starts clean rather than failing on it.
            if [ -n "$created" ]; then rm -rf .venv; fi
            echo "error: 'python3 -m venv .venv' failed (its message is above). It needs Python's venv module with ensurepip: on Debian/Ubuntu, sudo apt install python3-venv (or python3.X-venv for your version)" >&2
            return 1
        fi
    fi
    if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
        echo "error: .venv has no pip (a setup that stopped half-way?): remove it (rm -rf .venv) and run this again; creating it needs Python's venv module with ensurepip (Debian/Ubuntu: python3-venv)" >&2
        return 1
    fi
    if [ -x ".venv/bin/$marker" ]; then
        # Installed before: only pick up changed dependencies, quietly.
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec" || {
            echo "error: 'pip install -e $spec' into .venv failed (pip's message is above)" >&2
            return 1
        }
    else
        echo "installing rds-backup into .venv (first run only)..." >&2
        .venv/bin/python -m pip install --disable-pip-version-check -e "$spec" || {
            echo "error: installing rds-backup into .venv failed (pip's message is above); it needs network access to PyPI, or a pip configured for a mirror" >&2
            return 1
        }
    fi
}
