"""Storage options for object-store URIs (s3://, s3+ddb://): config first, then the standard
AWS environment variables, so a store on S3 (or MinIO, or moto in the tests) needs no flags.

`s3+ddb://bucket/path?ddbTableName=T` commits through a DynamoDB table, for S3-compatible stores
without conditional writes (Lance refuses to commit there otherwise).
"""

from __future__ import annotations

import os

# environment variable -> Lance/object_store option, in order of precedence per option
_AWS_ENV = [
    ("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
    ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
    ("AWS_SESSION_TOKEN", "aws_session_token"),
    ("AWS_REGION", "aws_region"),
    ("AWS_DEFAULT_REGION", "aws_region"),
    ("AWS_ENDPOINT_URL_S3", "aws_endpoint"),
    ("AWS_ENDPOINT_URL", "aws_endpoint"),
]
_DDB_ENV = [("AWS_ENDPOINT_URL_DYNAMODB", "dynamodb_endpoint"), ("AWS_ENDPOINT_URL", "dynamodb_endpoint")]


def scheme(uri: str) -> str:
    return uri.split("://", 1)[0].lower() if "://" in uri else "file"


def storage_options(uri: str, given: dict | None = None) -> dict | None:
    """The options LanceDB gets for `uri`: `given` (config) over the AWS environment."""
    sch = scheme(uri)
    if sch not in ("s3", "s3+ddb"):
        return dict(given) if given else None
    opts: dict[str, str] = {}
    for env, key in _AWS_ENV + (_DDB_ENV if sch == "s3+ddb" else []):
        if os.environ.get(env) and key not in opts:
            opts[key] = os.environ[env]
    opts.update({k: str(v) for k, v in (given or {}).items()})
    # A plain-http endpoint (a local S3 such as MinIO or moto) is refused unless allowed.
    if opts.get("aws_endpoint", "").startswith("http://"):
        opts.setdefault("allow_http", "true")
    return opts or None
