"""Settings of the lake's commands, read from the environment once at the entry point."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LakeSettings", "StorageSettings"]


class LakeSettings(BaseSettings):
    """Where the lake is; `--lake` on the command line wins over LAKE_URI."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    lake_uri: str = "./lake"
    # The worker's TOPIC_EPOCH: `lake wait` reads the app transactions of this epoch.
    topic_epoch: str = ""


def _env(*names: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(*names))


class StorageSettings(BaseSettings):
    """Object-store settings of an s3:// lake: LAKE_S3_* first, then the standard AWS_* variables."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False, populate_by_name=True)

    endpoint_url: str | None = _env("lake_s3_endpoint_url", "aws_endpoint_url_s3", "aws_endpoint_url")
    access_key_id: str | None = _env("lake_s3_access_key_id", "aws_access_key_id")
    secret_access_key: SecretStr | None = _env("lake_s3_secret_access_key", "aws_secret_access_key")
    session_token: SecretStr | None = _env("lake_s3_session_token", "aws_session_token")
    region: str | None = _env("lake_s3_region", "aws_region", "aws_default_region")
    allow_http: bool | None = _env("lake_s3_allow_http", "aws_allow_http")
    # "path" for MinIO/moto-style endpoints, "vhost" for AWS; default: path when an endpoint is set.
    url_style: Literal["path", "vhost"] | None = _env("lake_s3_url_style")
    # S3 conditional writes make concurrent commits safe; "disabled" only for a store without them.
    conditional_put: Literal["etag", "disabled"] = Field(
        default="etag", validation_alias=AliasChoices("lake_s3_conditional_put", "aws_conditional_put")
    )
    # delta-rs's own opt-out for stores without conditional writes: safe with ONE writer only.
    allow_unsafe_rename: bool = Field(
        default=False, validation_alias=AliasChoices("lake_s3_allow_unsafe_rename", "aws_s3_allow_unsafe_rename")
    )
