"""Settings of the lake's commands, read from the environment once at the entry point."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LakeSettings"]


class LakeSettings(BaseSettings):
    """Where the lake is; `--lake` on the command line wins over LAKE_URI."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    lake_uri: str = "./lake"
    # The worker's TOPIC_EPOCH: `lake wait` reads the app transactions of this epoch.
    topic_epoch: str = ""
