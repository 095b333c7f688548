"""Settings, read from the environment (``DATONG_*``) once per process."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an operator can set. Each field maps to ``DATONG_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="DATONG_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///var/datong.sqlite3",
        description="SQLAlchemy URL. SQLite is the embedded default; PostgreSQL via postgresql+psycopg://",
    )
    # Keys never live in the database. One of the two must be set (see core.crypto).
    master_key: str | None = Field(default=None, description="base64 of 32 random bytes")
    key_file: Path | None = Field(default=None, description="file holding the base64 master key")
    previous_master_key: str | None = Field(
        default=None, description="the key before a rotation; still used to read old ciphertext"
    )
    import_chunk_rows: int = Field(default=2000, ge=1, le=100_000)
    session_hours: int = Field(default=12, ge=1, le=24 * 30)
    locale: str = Field(default="zh-CN")
    # WeChat Pay (profit sharing), for the outbox worker. Keys are files outside the database.
    wechatpay_mchid: str | None = Field(default=None, description="the merchant id")
    wechatpay_appid: str | None = Field(default=None, description="the appid payments are made under")
    wechatpay_serial_no: str | None = Field(default=None, description="the merchant API certificate's serial")
    wechatpay_key_file: Path | None = Field(default=None, description="apiclient_key.pem")
    wechatpay_platform_keys: str | None = Field(
        default=None, description="SERIAL=path[,SERIAL=path]: WeChat Pay public keys or platform certificates"
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
