"""The toncenter HTTP API v2 client, and readers of the transactions it returns."""

from __future__ import annotations

import base64
import binascii
import contextlib
from typing import Any

import requests
from pytoniq_core import Cell
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from dynamic_assets.provenance.ton.errors import TonApiError
from dynamic_assets.settings import DEFAULT_API_URL


class TonCenterClient:
    """A small toncenter API v2 client: JSON over HTTPS, `{"ok": true, "result": ...}` answers,
    retries with backoff on 429 and 5xx gateway errors, the API key in `X-API-Key`."""

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        api_key: str | None = None,
        *,
        timeout: float = 15.0,
        retries: int = 4,
        backoff: float = 0.5,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        retry = Retry(
            total=retries,
            backoff_factor=backoff,
            status_forcelist=(429, 502, 503, 504),
            allowed_methods=None,  # sendBoc is safe to repeat: a seqno is spent once
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        if api_key:
            self.session.headers["X-API-Key"] = api_key

    def describe(self) -> str:
        return self.base_url

    def _call(self, method: str, *, params: dict | None = None, body: dict | None = None) -> Any:
        url = f"{self.base_url}/{method}"
        try:
            if body is None:
                resp = self.session.get(url, params=params, timeout=self.timeout)
            else:
                resp = self.session.post(url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise TonApiError(
                f"toncenter {method}: request to {self.base_url} failed: {exc}"
            ) from None
        try:
            data = resp.json()
        except ValueError:
            raise TonApiError(
                f"toncenter {method}: HTTP {resp.status_code}, not a JSON answer: {resp.text[:200]!r}"
            ) from None
        if not isinstance(data, dict) or "ok" not in data:
            raise TonApiError(f"toncenter {method}: not an API v2 answer: {str(data)[:200]}")
        if not data["ok"] or resp.status_code >= 400:
            raise TonApiError(
                f"toncenter {method}: HTTP {resp.status_code}, error {data.get('code', '')}: "
                f"{data.get('error') or data.get('result')}"
            )
        return data.get("result")

    def address_state(self, address: str) -> str:
        return str(self._call("getAddressState", params={"address": address}))

    def seqno(self, address: str) -> int:
        result = self._call(
            "runGetMethod", body={"address": address, "method": "seqno", "stack": []}
        )
        exit_code = result.get("exit_code")
        if exit_code != 0:
            raise TonApiError(f"toncenter runGetMethod seqno on {address}: exit code {exit_code}")
        try:
            kind, value = result["stack"][0]
            if kind != "num":
                raise ValueError(kind)
            return int(value, 16) if str(value).startswith(("0x", "-0x")) else int(value)
        except (KeyError, IndexError, TypeError, ValueError):
            raise TonApiError(
                f"toncenter runGetMethod seqno: unexpected stack {result.get('stack')!r}"
            ) from None

    def send_boc(self, boc: bytes) -> None:
        self._call("sendBoc", body={"boc": base64.b64encode(boc).decode("ascii")})

    def transactions(
        self,
        address: str,
        *,
        limit: int = 16,
        lt: int | None = None,
        tx_hash: str | None = None,
        archival: bool = False,
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"address": address, "limit": limit}
        if lt is not None and tx_hash is not None:
            params.update(lt=str(lt), hash=tx_hash)
        if archival:
            params["archival"] = "true"
        result = self._call("getTransactions", params=params)
        if not isinstance(result, list):
            raise TonApiError(
                f"toncenter getTransactions: expected a list, got {str(result)[:200]}"
            )
        return result


def _b64_to_hex(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4)).hex()
    except (binascii.Error, ValueError):
        try:
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()
        except (binascii.Error, ValueError):
            return None


def message_texts(msg: dict[str, Any] | None) -> list[str]:
    """The text comments a toncenter raw.message carries, however the API presents them."""
    if not msg:
        return []
    texts = []
    if isinstance(msg.get("message"), str) and msg["message"]:
        texts.append(msg["message"])
    data = msg.get("msg_data") or {}
    if data.get("@type") == "msg.dataText" and data.get("text"):
        with contextlib.suppress(binascii.Error, ValueError):
            texts.append(base64.b64decode(data["text"]).decode("utf-8", "replace"))
    if data.get("@type") == "msg.dataRaw" and data.get("body"):
        try:
            body = Cell.one_from_boc(base64.b64decode(data["body"])).begin_parse()
            if body.remaining_bits >= 32 and body.load_uint(32) == 0:
                texts.append(body.load_snake_string())
        except Exception:  # not a comment body
            pass
    return texts


def inbound_body_hash(tx: dict[str, Any]) -> str | None:
    """The hash (hex) of a transaction's inbound message body, from the API's fields."""
    msg = tx.get("in_msg") or {}
    if msg.get("body_hash"):
        return _b64_to_hex(msg["body_hash"])
    data = msg.get("msg_data") or {}
    if data.get("body"):
        try:
            return Cell.one_from_boc(base64.b64decode(data["body"])).hash.hex()
        except Exception:
            return None
    return None


def tx_id(tx: dict[str, Any]) -> tuple[int, str, str]:
    """(lt, hash as hex, hash as the API's base64) of a raw.transaction."""
    tid = tx.get("transaction_id") or {}
    h = str(tid.get("hash", ""))
    return int(tid.get("lt", 0)), _b64_to_hex(h) or "", h
