"""A local HTTPS server that speaks the parts of the toncenter HTTP API v2 that anchoring uses,
over an in-memory chain of v4r2 wallets.

Endpoints (under `/api/v2/`, answers `{"ok": true, "result": ...}` or
`{"ok": false, "error": ..., "code": ...}` as toncenter documents them):

- `GET getAddressState?address=` -> "active" | "uninitialized"
- `POST runGetMethod {"address", "method": "seqno", "stack": []}` -> `smc.runResult` with
  `stack: [["num", "0x.."]]`, exit code -13 for an account without code
- `POST sendBoc {"boc"}` -> `{"@type": "ok"}`; the message is parsed with **tonsdk** (an
  implementation independent of the pytoniq-core that built it) and applied like a wallet v4r2
  would: destination, state init for a deploy, wallet id, valid_until, seqno and the Ed25519
  signature over the signing cell's hash are all checked; a bad one is refused with 500
- `GET getTransactions?address=&limit=&lt=&hash=` -> `raw.transaction` list, newest first,
  with `in_msg` (`body_hash`, `msg_data` `msg.dataRaw`) and `out_msgs` (`msg.dataText`)

Faults: `fail_next(method, status)` (e.g. 429), `hide_new_transactions(polls)` (a transaction
appears only after N polls), `api_key` (then `X-API-Key` is required).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from tonsdk.boc import Cell
from tonsdk.contract.wallet import WalletV4ContractR2
from tonsdk.utils import Address

from dynamic_assets_tests.support.servers import LoopbackServer, trusting

WALLET_ID = 698983191


def cell_from_slice(s) -> Cell:
    """The rest of a tonsdk slice (bits and unread refs) as a cell, to hash it."""
    c = Cell()
    c.bits.write_bit_array(s.bits.to01().encode())
    c.refs = list(s.refs[s.ref_offset :])
    return c


def _state_init(s) -> dict:
    if s.read_bit():
        s.read_uint(5)
    if s.read_bit():
        s.read_uint(2)
    code = s.read_ref() if s.read_bit() else None
    data = s.read_ref() if s.read_bit() else None
    if s.read_bit():
        s.read_ref()
    d = data.begin_parse()
    return {
        "code_hash": code.bytes_hash().hex() if code else None,
        "seqno": d.read_uint(32),
        "wallet_id": d.read_uint(32),
        "public_key": d.read_bytes(32),
    }


def parse_external(boc: bytes) -> dict:
    """An external inbound wallet message, read with tonsdk."""
    s = Cell.one_from_boc(boc).begin_parse()
    if s.read_uint(2) != 0b10:
        raise ValueError("not ext_in_msg_info$10")
    s.read_msg_addr()  # src: addr_none
    dest = s.read_msg_addr()
    s.read_coins()
    init = None
    if s.read_bit():
        init = _state_init(s.read_ref().begin_parse() if s.read_bit() else s)
    body = s.read_ref().begin_parse() if s.read_bit() else s
    body_cell = cell_from_slice(body)
    signature = body.read_bytes(64)
    signing = cell_from_slice(body)
    sp = signing.begin_parse()
    out = {
        "dest": dest.to_string(False),
        "init": init,
        "body_cell": body_cell,
        "signature": signature,
        "signing_hash": signing.bytes_hash(),
        "wallet_id": sp.read_uint(32),
        "valid_until": sp.read_uint(32),
        "seqno": sp.read_uint(32),
        "op": sp.read_uint(8),
        "messages": [],
    }
    while sp.ref_offset < len(sp.refs):
        mode = sp.read_uint(8)
        m = sp.read_ref().begin_parse()
        if m.read_bit() != 0:
            raise ValueError("not an internal message")
        m.read_bit(), m.read_bit(), m.read_bit()  # ihr_disabled, bounce, bounced
        m.read_msg_addr()
        to = m.read_msg_addr()
        value = m.read_coins()
        if m.read_bit():
            m.read_ref()  # extra currencies
        m.read_coins(), m.read_coins(), m.read_uint(64), m.read_uint(32)
        if m.read_bit():
            raise ValueError("state init in an internal message is not expected here")
        mb = m.read_ref().begin_parse() if m.read_bit() else m
        text = None
        if len(mb.bits) >= 32 and mb.read_uint(32) == 0:
            text = mb.read_string()
        out["messages"].append(
            {"mode": mode, "to": to.to_string(False), "value": value, "text": text}
        )
    return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class Account:
    state: str = "uninitialized"
    seqno: int = 0
    public_key: bytes | None = None
    funded: bool = False
    txs: list[dict] = field(default_factory=list)


class TonCenterServer(LoopbackServer):
    """The server; `api_url` is the toncenter-style base (`https://127.0.0.1:<port>/api/v2`)."""

    def __init__(self, tmp: Path, *, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.accounts: dict[str, Account] = {}
        self.log: list[dict] = []
        self.bodies: list[bytes] = []  # every request body, to check that no secret is sent
        self.faults: list[tuple[str, int]] = []
        self.hidden_polls = 0
        self.lt = itertools.count(47_000_000_000_001, 7)
        self.now = int(time.time())
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"app": self})
        super().__init__(handler, ca_file=tmp / "toncenter-test-ca.pem")
        self.api_url = f"{self.url}/api/v2"

    # ---- test controls

    def account(self, address: str) -> Account:
        raw = Address(address).to_string(False)
        return self.accounts.setdefault(raw, Account())

    def fund(self, address: str) -> None:
        self.account(address).funded = True

    def fail_next(self, method: str, status: int) -> None:
        self.faults.append((method, status))

    def hide_new_transactions(self, polls: int) -> None:
        self.hidden_polls = polls

    def forget_transactions(self) -> None:
        for a in self.accounts.values():
            a.txs.clear()

    def calls(self, method: str) -> int:
        return sum(1 for e in self.log if e["method"] == method)

    # ---- the chain

    def apply(self, boc: bytes) -> tuple[int, dict]:
        try:
            msg = parse_external(boc)
        except Exception as exc:
            return 500, {"ok": False, "error": f"failed to parse boc: {exc}", "code": 500}
        acct = self.accounts.setdefault(msg["dest"], Account())
        refuse = {
            "ok": False,
            "error": "LITE_SERVER_UNKNOWN: cannot apply external message to current state : "
            "External message was not accepted",
            "code": 500,
        }
        if acct.state == "uninitialized":
            init = msg["init"]
            if init is None or not acct.funded:
                return 500, refuse
            expected = WalletV4ContractR2(public_key=init["public_key"], private_key=b"", wc=0)
            if expected.address.to_string(False) != msg["dest"]:
                return 500, refuse
            acct.public_key = init["public_key"]
        if (
            msg["wallet_id"] != WALLET_ID
            or msg["seqno"] != acct.seqno
            or msg["valid_until"] <= self.now
        ):
            return 500, refuse
        try:
            VerifyKey(acct.public_key).verify(msg["signing_hash"], msg["signature"])
        except BadSignatureError:
            return 500, refuse
        acct.state = "active"
        acct.seqno += 1
        lt = next(self.lt)
        friendly = Address(msg["dest"]).to_string(True, True, False, True)
        body = msg["body_cell"]
        out_msgs = []
        for m in msg["messages"]:
            text = m["text"] or ""
            out_msgs.append(
                {
                    "@type": "raw.message",
                    "source": friendly,
                    "destination": Address(m["to"]).to_string(True, True, False, True),
                    "value": str(m["value"]),
                    "fwd_fee": "266669",
                    "ihr_fee": "0",
                    "created_lt": str(lt + 1),
                    "body_hash": _b64(hashlib.sha256(text.encode()).digest()),
                    "msg_data": {"@type": "msg.dataText", "text": _b64(text.encode())},
                    "message": text,
                }
            )
        tx = {
            "@type": "raw.transaction",
            "address": {"@type": "accountAddress", "account_address": friendly},
            "utime": self.now,
            "data": _b64(b"\x00" * 32),
            "transaction_id": {
                "@type": "internal.transactionId",
                "lt": str(lt),
                "hash": _b64(hashlib.sha256(f"tx{lt}".encode()).digest()),
            },
            "fee": "2795017",
            "storage_fee": "17",
            "other_fee": "2795000",
            "in_msg": {
                "@type": "raw.message",
                "source": "",
                "destination": friendly,
                "value": "0",
                "fwd_fee": "0",
                "ihr_fee": "0",
                "created_lt": "0",
                "body_hash": _b64(body.bytes_hash()),
                "msg_data": {
                    "@type": "msg.dataRaw",
                    "body": _b64(body.to_boc(False)),
                    "init_state": "",
                },
                "message": "",
            },
            "out_msgs": out_msgs,
        }
        acct.txs.insert(0, tx)
        return 200, {"ok": True, "result": {"@type": "ok", "@extra": "1.0:abc"}}

    def handle(self, method: str, params: dict, body: dict | None, api_key: str | None):
        with self._lock:
            self.log.append({"method": method, "params": params, "body": body})
            if self.api_key and api_key != self.api_key:
                return 401, {"ok": False, "error": "API key does not exist", "code": 401}
            for i, (m, status) in enumerate(self.faults):
                if m == method:
                    del self.faults[i]
                    return status, {"ok": False, "error": "Ratelimit exceed", "code": status}
            if method == "getAddressState":
                acct = self.account(params["address"])
                return 200, {"ok": True, "result": acct.state}
            if method == "runGetMethod":
                acct = self.account(body["address"])
                if body.get("method") != "seqno":
                    return 200, {
                        "ok": True,
                        "result": {
                            "@type": "smc.runResult",
                            "gas_used": 0,
                            "stack": [],
                            "exit_code": 11,
                        },
                    }
                if acct.state != "active":
                    return 200, {
                        "ok": True,
                        "result": {
                            "@type": "smc.runResult",
                            "gas_used": 0,
                            "stack": [],
                            "exit_code": -13,
                        },
                    }
                return 200, {
                    "ok": True,
                    "result": {
                        "@type": "smc.runResult",
                        "gas_used": 410,
                        "stack": [["num", hex(acct.seqno)]],
                        "exit_code": 0,
                        "@extra": "1.0:seq",
                    },
                }
            if method == "sendBoc":
                try:
                    boc = base64.b64decode(body["boc"])
                except Exception:
                    return 400, {"ok": False, "error": "boc is not base64", "code": 400}
                return self.apply(boc)
            if method == "getTransactions":
                acct = self.account(params["address"])
                txs = list(acct.txs)
                if self.hidden_polls > 0 and txs:
                    self.hidden_polls -= 1
                    txs = txs[1:]
                if "lt" in params and "hash" in params:
                    start = next(
                        (
                            i
                            for i, t in enumerate(txs)
                            if t["transaction_id"]["lt"] == params["lt"]
                            and t["transaction_id"]["hash"] == params["hash"]
                        ),
                        None,
                    )
                    if start is None:
                        return 500, {
                            "ok": False,
                            "error": "LITE_SERVER_UNKNOWN: cannot locate transaction",
                            "code": 500,
                        }
                    txs = txs[start:]
                return 200, {"ok": True, "result": txs[: int(params.get("limit", 10))]}
            return 404, {"ok": False, "error": "Not Found", "code": 404}


class _Handler(BaseHTTPRequestHandler):
    app: TonCenterServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _answer(self, status: int, data: dict) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        if status == 429:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(raw)

    def _route(self, body: dict | None) -> None:
        url = urlsplit(self.path)
        if not url.path.startswith("/api/v2/"):
            self._answer(404, {"ok": False, "error": "Not Found", "code": 404})
            return
        method = url.path[len("/api/v2/") :]
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            status, data = self.app.handle(method, params, body, self.headers.get("X-API-Key"))
        except Exception as exc:  # a bug in the fake: answer like toncenter does
            status, data = 500, {"ok": False, "error": f"internal error: {exc!r}", "code": 500}
        self._answer(status, data)

    def do_GET(self) -> None:  # noqa: N802
        self._route(None)

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.app.bodies.append(raw)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._answer(400, {"ok": False, "error": "body is not JSON", "code": 400})
            return
        self._route(body)


def serve(
    tmp_path: Path, monkeypatch, **kwargs
) -> contextlib.AbstractContextManager[TonCenterServer]:
    """Run a server for one test; requests trust only its CA (TLS verification stays on)."""
    return trusting(TonCenterServer(tmp_path, **kwargs), monkeypatch)
