"""rds-backup: a resumable, parallel downloader for Huawei Cloud RDS backups."""

__version__ = "0.1.0"
