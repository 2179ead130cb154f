"""Where the lake's bytes live: the one place that turns settings into object-store options.

A local lake needs nothing. An `s3://bucket/prefix` lake is reached with the standard AWS
variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP);
a LAKE_S3_* variable of the same name overrides its AWS_* one for the lake alone. The same
options feed delta-rs (the worker, `lake maintain`, `--reader arrow`) and DuckDB's S3 secret
(`lake sql`, `snapshot`), so every command reads one lake the same way.

Several workers commit to one table safely through S3 conditional writes (`If-None-Match: *`
on the next `_delta_log` entry): the loser of a race gets "already exists", and delta-rs
re-reads, checks for conflicts and retries. AWS S3 (since Aug 2024), MinIO and Cloudflare R2
support it; on a store that does not, set LAKE_S3_CONDITIONAL_PUT=disabled and
AWS_S3_ALLOW_UNSAFE_RENAME=true, and run one worker only (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from lake.exceptions import StorageConfigError

if TYPE_CHECKING:
    from lake.settings import StorageSettings

__all__ = [
    "create_duckdb_secret", "is_local", "public_uri", "resolve_storage_options",
    "storage_options", "unreachable",
]

def is_local(uri: str) -> bool:
    return "://" not in str(uri) or str(uri).startswith("file://")


def _check_scheme(lake_uri: str) -> None:
    scheme = str(lake_uri).split("://", 1)[0].lower()
    if scheme not in ("s3", "s3a"):
        raise StorageConfigError(
            f"LAKE_URI {public_uri(lake_uri)!r}: scheme {scheme!r} is not supported; use a local path "
            "or s3://bucket/prefix (any S3-compatible store: AWS S3, MinIO, R2)"
        )


def storage_options(lake_uri: str, settings: StorageSettings | None = None) -> dict[str, str]:
    """delta-rs/object_store options for `lake_uri` (empty for a local lake)."""
    if is_local(lake_uri):
        return {}
    _check_scheme(lake_uri)
    if settings is None:
        from pydantic import ValidationError

        from lake.settings import StorageSettings  # pydantic-settings only for a remote lake

        try:
            settings = StorageSettings()
        except ValidationError as exc:
            err = exc.errors()[0]
            raise StorageConfigError(
                f"object-store setting {'.'.join(str(x) for x in err['loc'])}={err.get('input')!r} is invalid "
                f"({err['msg']}); fix the LAKE_S3_* / AWS_* variable of that name"
            ) from None
    s = settings
    opts: dict[str, str] = {}
    if s.endpoint_url:
        opts["aws_endpoint_url"] = s.endpoint_url
    if s.access_key_id:
        opts["aws_access_key_id"] = s.access_key_id
    if s.secret_access_key is not None:
        opts["aws_secret_access_key"] = s.secret_access_key.get_secret_value()
    if s.session_token is not None:
        opts["aws_session_token"] = s.session_token.get_secret_value()
    if s.region:
        opts["aws_region"] = s.region
    allow_http = s.allow_http if s.allow_http is not None else bool(s.endpoint_url and s.endpoint_url.startswith("http://"))
    if allow_http:
        opts["aws_allow_http"] = "true"
    style = s.url_style or ("path" if s.endpoint_url else "vhost")
    opts["aws_virtual_hosted_style_request"] = "true" if style == "vhost" else "false"
    opts["aws_conditional_put"] = s.conditional_put
    if s.allow_unsafe_rename:
        opts["aws_s3_allow_unsafe_rename"] = "true"
    return opts


def resolve_storage_options(lake_uri: str, given: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """`given` when the caller passed options, else the environment's for a remote lake; None if local."""
    if given:
        return dict(given)
    opts = storage_options(lake_uri)
    return opts or None


def create_duckdb_secret(con: Any, lake_uri: str, options: Mapping[str, str] | None) -> None:
    """A DuckDB S3 secret scoped to the lake's bucket, from the same options delta-rs gets.

    The statement holds the secret, so a failure is reported without it.
    """
    import duckdb

    opts = dict(options or {})
    bucket = urlsplit(str(lake_uri)).netloc
    parts = ["TYPE s3", f"SCOPE {_quote('s3://' + bucket)}"]
    if opts.get("aws_access_key_id"):
        parts.append(f"KEY_ID {_quote(opts['aws_access_key_id'])}")
    if opts.get("aws_secret_access_key"):
        parts.append(f"SECRET {_quote(opts['aws_secret_access_key'])}")
    if opts.get("aws_session_token"):
        parts.append(f"SESSION_TOKEN {_quote(opts['aws_session_token'])}")
    if opts.get("aws_region"):
        parts.append(f"REGION {_quote(opts['aws_region'])}")
    endpoint = opts.get("aws_endpoint_url")
    if endpoint:
        url = urlsplit(endpoint if "://" in endpoint else "https://" + endpoint)
        parts.append(f"ENDPOINT {_quote(url.netloc + url.path.rstrip('/'))}")
        parts.append(f"USE_SSL {'false' if url.scheme == 'http' else 'true'}")
    vhost = opts.get("aws_virtual_hosted_style_request", "false" if endpoint else "true") == "true"
    parts.append(f"URL_STYLE {_quote('vhost' if vhost else 'path')}")
    if not opts.get("aws_access_key_id"):
        parts.append("PROVIDER config")
    try:
        con.execute(f"CREATE OR REPLACE SECRET lake_s3 ({', '.join(parts)})")
    except duckdb.Error as exc:
        raise StorageConfigError(
            f"could not configure DuckDB's S3 access to {public_uri(lake_uri)} ({type(exc).__name__}); "
            "check AWS_ENDPOINT_URL, AWS_REGION and the credentials variables"
        ) from None


def public_uri(uri: str) -> str:
    """`uri` without any user:password@ part: safe for logs and manifests."""
    text = str(uri)
    if "://" not in text:
        return text
    parts = urlsplit(text)
    if "@" not in parts.netloc:
        return text
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def unreachable(uri: str, exc: BaseException) -> StorageConfigError:
    """One line for an object store that cannot be read: what, why, and what to check."""
    # delta-rs chains its causes with "↳" (and colours them); the first and last say it all.
    parts = [" ".join(re.sub(r"\x1b\[[0-9;]*m", "", p).split()) for p in str(exc).split("↳")]
    parts = [p for p in parts if p]
    cause = (parts[0] if len(parts) < 2 else f"{parts[0]}: {parts[-1]}") if parts else type(exc).__name__
    return StorageConfigError(
        f"cannot read {public_uri(uri)} ({cause}); check AWS_ENDPOINT_URL (or LAKE_S3_ENDPOINT_URL), "
        "the bucket name and the credentials variables"
    )
