"""The S3 credentials and variables of the object-storage tests (moto's server on loopback: the fixtures
``s3_endpoint``, ``bucket`` and ``s3_store`` of tests/conftest.py)."""

ACCESS_KEY, SECRET_KEY = "AKIDPRODTESTS", "s3-secret-key-for-production-tests"


def s3_env(endpoint: str) -> dict[str, str]:
    """The variables that point the Parquet snapshots' S3 client at ``endpoint``."""
    return {"DDS_S3_ENDPOINT": endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1"}
