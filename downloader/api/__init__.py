"""Talking to the Huawei Cloud RDS and IAM APIs: signing, auth, HTTP client, parsing."""
