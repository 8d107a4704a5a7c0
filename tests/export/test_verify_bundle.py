"""Export bundles: verify.py (run as a subprocess, as an auditor would) passes clean bundles and names
the first problem in tampered ones."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.export.bundle import manifest_note_body, write_bundle
from audit.ledger.chain import ZERO_HASH, canonical_json, chain_hash, leaf_hash
from audit.ledger.checkpoint import format_checkpoint, public_key_text, sign_note
from audit.ledger.merkle import merkle_root
from tests.support import system_python

LOG = "coding-audit"
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()


def _payloads(n: int) -> list[bytes]:
    out = []
    for seq in range(n):
        obj = {
            "log_id": LOG,
            "seq": seq,
            "ts": (T0 + timedelta(minutes=seq)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "event_id": f"ev-{seq:05d}",
            "type": "code.added" if seq % 3 else "encounter.viewed",
            "actor": {"id": f"u-{seq % 4}", "role": "coder"},
            "on_behalf_of": {"id": f"p-{seq % 2}", "role": "provider"} if seq % 2 else None,
            "subject": {"type": "code_line", "id": f"cl-{seq}"},
            "encounter_id": f"enc-{seq // 5}",
            "outcome": "allowed",
            "reason": "per documentation, see note"
            if seq % 7
            else "M\u00fcller\u2019s caf\u00e9 \u2014 \u2713",
            "policy": {"version": "2026.05", "rules": ["r1", "r2"]},
            "before": None,
            "after": {"code": "E11.9", "units": "1"},
        }
        out.append(canonical_json(obj))
    return out


class Ledger:
    def __init__(self, n: int) -> None:
        self.payloads = _payloads(n)
        self.leaves = [leaf_hash(p) for p in self.payloads]
        self.chains: list[bytes] = []
        prev = ZERO_HASH
        for seq, leaf in enumerate(self.leaves):
            prev = chain_hash(prev, seq, leaf)
            self.chains.append(prev)

    def note(self, size: int, key: Ed25519PrivateKey = KEY, name: str = LOG) -> str:
        chain = self.chains[size - 1] if size else ZERO_HASH
        body = format_checkpoint(LOG, size, merkle_root(self.leaves[:size]), chain, T0 + timedelta(days=1))
        return sign_note(body, name, key)


N = 40


def sign_with(key: Ed25519PrivateKey, name: str = LOG) -> Callable[[str], str]:
    return lambda body: sign_note(body, name, key)


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return Ledger(N)


def _full(ledger: Ledger, path: Path, **over: object) -> Path:
    args: dict[str, object] = {
        "log_id": LOG,
        "events": ((s, p, ledger.chains[s]) for s, p in enumerate(ledger.payloads)),
        "leaf_hashes_for_proofs": None,
        "checkpoint_note": None if "checkpoint_note" in over else [ledger.note(10), ledger.note(N)],
        "public_key_text": public_key_text(LOG, KEY.public_key()),
        "key_name": LOG,
        "scope": None,
        "full": True,
        "tree_size": N,
        "sign_manifest": sign_with(KEY),
        "extra_files": {"report.csv": b"a,b\n1,2\n"},
    }
    args.update(over)
    write_bundle(path, **args)  # type: ignore[arg-type]
    return path


SCOPED_SEQS = [3, 4, 9, 17, 31, 39]


def _scoped(ledger: Ledger, path: Path, earlier: Sequence[int] = ()) -> Path:
    write_bundle(
        path,
        log_id=LOG,
        events=((s, ledger.payloads[s]) for s in SCOPED_SEQS),
        leaf_hashes_for_proofs=ledger.leaves,
        checkpoint_note=[*(ledger.note(m) for m in earlier), ledger.note(N)],
        public_key_text=public_key_text(LOG, KEY.public_key()),
        key_name=LOG,
        scope={"from": "2026-05-01", "to": "2026-05-02", "provider_ids": ["p-1"]},
        full=False,
        tree_size=N,
        sign_manifest=sign_with(KEY),
        extra_files={"report.pdf": b"%PDF-1.4 fake", "report.csv": b"provider,events\np-1,6\n"},
    )
    return path


def _run(*args: str, cwd: Path | None = None) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )
    return proc.returncode, proc.stdout + proc.stderr


def _verify_zip(bundle: Path) -> tuple[int, str]:
    script = bundle.parent / "verify_tool.py"
    if not script.exists():
        with zipfile.ZipFile(bundle) as zf:
            script.write_bytes(zf.read("verify.py"))
    return _run(str(script), str(bundle))


def _rewrite(
    src: Path,
    dst: Path,
    edit: Callable[[dict[str, bytes]], None],
    rehash: bool = True,
    resign: Ed25519PrivateKey | None = None,
) -> Path:
    """Copy a bundle applying ``edit`` to its files; optionally recompute the manifest digests (what
    anyone can do) and sign the manifest again (what only a holder of ``resign`` can do)."""
    with zipfile.ZipFile(src) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    edit(files)
    if rehash and "manifest.json" in files:
        manifest = json.loads(files["manifest.json"])
        manifest["files"] = {
            n: hashlib.sha256(d).hexdigest()
            for n, d in files.items()
            if n not in ("manifest.json", "manifest.sig")
        }
        files["manifest.json"] = json.dumps(manifest).encode()
    if resign is not None and "manifest.json" in files:
        files["manifest.sig"] = sign_note(
            manifest_note_body(LOG, files["manifest.json"]), LOG, resign
        ).encode()
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return dst


def test_clean_full_bundle_verifies_as_zip_and_unpacked(ledger: Ledger, tmp_path: Path) -> None:
    bundle = _full(ledger, tmp_path / "full.zip")
    code, out = _verify_zip(bundle)
    root = base64.b64encode(merkle_root(ledger.leaves)).decode()
    vkey = public_key_text(LOG, KEY.public_key())
    assert (code, out.strip().splitlines()) == (
        0,
        [
            f"OK: {N} events, seq 0..{N - 1}, tree size {N}, root {root}",
            f"key: {vkey} (compare it with the published key)",
        ],
    )
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(unpacked)
    code, out = _run("verify.py", cwd=unpacked)  # no argument: the script's own directory
    assert code == 0, out
    assert out.startswith(f"OK: {N} events")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert _run(str(unpacked / "verify.py"), cwd=elsewhere)[0] == 0


def test_parallel_and_serial_agree(ledger: Ledger, tmp_path: Path) -> None:
    bundle = _full(ledger, tmp_path / "full.zip")
    with zipfile.ZipFile(bundle) as zf:
        (tmp_path / "v.py").write_bytes(zf.read("verify.py"))
    assert _run(str(tmp_path / "v.py"), "--jobs", "1", str(bundle))[0] == 0
    assert _run(str(tmp_path / "v.py"), "--jobs", "2", str(bundle))[0] == 0
    bad = _rewrite(bundle, tmp_path / "bad.zip", lambda f: _edit_line(f, 25, b'"u-1"', b'"u-9"'), resign=KEY)
    for jobs in ("1", "2"):
        code, out = _run(str(tmp_path / "v.py"), "--jobs", jobs, str(bad))
        assert code == 1
        assert "events.jsonl line 26 (seq 25): chain hash mismatch" in out


def test_clean_scoped_bundle_verifies(ledger: Ledger, tmp_path: Path) -> None:
    bundle = _scoped(ledger, tmp_path / "scoped.zip")
    code, out = _verify_zip(bundle)
    assert code == 0, out
    assert out.startswith(f"OK: {len(SCOPED_SEQS)} events, seq 3..39, tree size {N}, root ")
    with zipfile.ZipFile(bundle) as zf:
        assert json.loads(zf.read("manifest.json"))["seq_range"] == [3, 39]
        assert set(json.loads(zf.read("proofs.json"))) == {str(s) for s in SCOPED_SEQS}


def test_empty_full_bundle(tmp_path: Path) -> None:
    empty = Ledger(0)
    bundle = tmp_path / "empty.zip"
    _full(empty, bundle, events=iter(()), checkpoint_note=empty.note(0), tree_size=0)
    code, out = _verify_zip(bundle)
    assert code == 0, out
    assert out.startswith("OK: 0 events, no seq, tree size 0, root 47DEQpj8")


def _lines(files: dict[str, bytes]) -> list[bytes]:
    return files["events.jsonl"].splitlines(keepends=True)


def _edit_line(files: dict[str, bytes], index: int, old: bytes, new: bytes) -> None:
    lines = _lines(files)
    assert old in lines[index]
    lines[index] = lines[index].replace(old, new, 1)
    files["events.jsonl"] = b"".join(lines)


def _drop_line(files: dict[str, bytes], index: int) -> None:
    lines = _lines(files)
    del lines[index]
    files["events.jsonl"] = b"".join(lines)


def _swap_lines(files: dict[str, bytes], index: int) -> None:
    lines = _lines(files)
    lines[index], lines[index + 1] = lines[index + 1], lines[index]
    files["events.jsonl"] = b"".join(lines)


def _resign(files: dict[str, bytes], ledger: Ledger, with_key: Ed25519PrivateKey) -> None:
    files["checkpoints.txt"] = ledger.note(N, key=with_key).encode()


def _set_manifest(files: dict[str, bytes], **fields: object) -> None:
    manifest = json.loads(files["manifest.json"])
    manifest.update(fields)
    files["manifest.json"] = json.dumps(manifest).encode()


OTHER = Ed25519PrivateKey.generate()

FULL_TAMPERS: list[tuple[str, Callable[[dict[str, bytes], Ledger], None], bool, str]] = [
    (
        "byte of events, manifest not updated",
        lambda f, _: _edit_line(f, 16, b'"cl-16"', b'"cl-61"'),
        False,
        "FAIL: events.jsonl: sha256 does not match manifest.json",
    ),
    (
        "byte of events, manifest rehashed",
        lambda f, _: _edit_line(f, 16, b'"cl-16"', b'"cl-61"'),
        True,
        "FAIL: events.jsonl line 17 (seq 16): chain hash mismatch",
    ),
    (
        "non-canonical whitespace",
        lambda f, _: _edit_line(f, 5, b'"outcome":', b'"outcome": '),
        True,
        "FAIL: events.jsonl line 6: payload is not canonical JSON",
    ),
    (
        "escaped instead of raw UTF-8",
        lambda f, _: _edit_line(f, 7, "Müller".encode(), b"M\\u00fcller"),
        True,
        "FAIL: events.jsonl line 8: payload is not canonical JSON",
    ),
    (
        "keys out of order",
        lambda f, _: _edit_line(f, 2, b'{"code":"E11.9","units":"1"}', b'{"units":"1","code":"E11.9"}'),
        True,
        "FAIL: events.jsonl line 3: payload is not canonical JSON",
    ),
    (
        "dropped line",
        lambda f, _: _drop_line(f, 20),
        True,
        "FAIL: events.jsonl line 21 (seq 21): expected seq 20",
    ),
    (
        "reordered lines",
        lambda f, _: _swap_lines(f, 12),
        True,
        "FAIL: events.jsonl line 13 (seq 13): expected seq 12",
    ),
    (
        "truncated tail",
        lambda f, _: _drop_line(f, N - 1),
        True,
        "FAIL: events.jsonl holds 39 events but the checkpoint's tree size is 40",
    ),
    (
        "stored chain hash altered",
        lambda f, _: f.__setitem__(
            "chain_hashes.bin", f["chain_hashes.bin"][:64] + bytes(32) + f["chain_hashes.bin"][96:]
        ),
        True,
        "FAIL: events.jsonl line 3 (seq 2): chain hash mismatch",
    ),
    (
        "checkpoint re-signed with another key",
        lambda f, led: _resign(f, led, OTHER),
        True,
        "FAIL: checkpoint 1 of 1 is signed by another key named 'coding-audit'",
    ),
    (
        "checkpoint body edited",
        lambda f, _: f.__setitem__("checkpoints.txt", f["checkpoints.txt"].replace(b"\n40\n", b"\n41\n")),
        True,
        "FAIL: checkpoint 2 of 2: signature does not verify with public_key.txt",
    ),
    (
        "public key replaced",
        lambda f, _: f.__setitem__("public_key.txt", public_key_text(LOG, OTHER.public_key()).encode()),
        True,
        "FAIL: manifest.sig is signed by another key named 'coding-audit'",
    ),
    (
        "manifest tree size changed",
        lambda f, _: _set_manifest(f, tree_size=39),
        True,
        "FAIL: manifest tree_size 39 differs from the checkpoint's 40",
    ),
    (
        "manifest seq range changed",
        lambda f, _: _set_manifest(f, seq_range=[0, 38]),
        True,
        "FAIL: manifest seq_range [0, 38] differs from the events' [0, 39]",
    ),
    (
        "manifest made unparseable",
        lambda f, _: f.__setitem__("manifest.json", f["manifest.json"][:-3]),
        False,
        "FAIL: manifest.json is not valid JSON",
    ),
    ("manifest missing", lambda f, _: f.pop("manifest.json"), False, "FAIL: manifest.json is missing"),
    (
        "report edited, manifest not updated",
        lambda f, _: f.__setitem__("report.csv", b"a,b\n1,3\n"),
        False,
        "FAIL: report.csv: sha256 does not match manifest.json",
    ),
    (
        "unlisted file added",
        lambda f, _: f.__setitem__("extra.txt", b"hi"),
        False,
        "FAIL: extra.txt is in the bundle but not listed in manifest.json",
    ),
    (
        "listed file removed",
        lambda f, _: f.pop("report.csv"),
        False,
        "FAIL: report.csv is listed in manifest.json but missing from the bundle",
    ),
]


@pytest.mark.parametrize(
    ("edit", "rehash", "message"), [t[1:] for t in FULL_TAMPERS], ids=[t[0] for t in FULL_TAMPERS]
)
def test_tampered_full_bundle_fails(
    ledger: Ledger,
    tmp_path: Path,
    edit: Callable[[dict[str, bytes], Ledger], None],
    rehash: bool,
    message: str,
) -> None:
    """Each edit is also signed again with the real key (as only its holder could): the checks behind
    the manifest signature still name the problem."""
    clean = _full(ledger, tmp_path / "clean.zip")
    bad = _rewrite(clean, tmp_path / "bad.zip", lambda f: edit(f, ledger), rehash=rehash, resign=KEY)
    code, out = _verify_zip(bad)
    assert code == 1
    assert out.startswith(message), out


def _alter_proof(files: dict[str, bytes]) -> None:
    proofs = json.loads(files["proofs.json"])
    first = proofs["9"][0]
    proofs["9"][0] = ("0" if first[0] != "0" else "1") + first[1:]
    files["proofs.json"] = json.dumps(proofs).encode()


def _drop_proof(files: dict[str, bytes]) -> None:
    proofs = json.loads(files["proofs.json"])
    del proofs["17"]
    files["proofs.json"] = json.dumps(proofs).encode()


SCOPED_TAMPERS: list[tuple[str, Callable[[dict[str, bytes]], None], str]] = [
    (
        "proof altered",
        _alter_proof,
        "FAIL: events.jsonl line 3 (seq 9): inclusion proof does not verify against the checkpoint",
    ),
    ("proof missing", _drop_proof, "FAIL: events.jsonl line 4 (seq 17): no inclusion proof in proofs.json"),
    (
        "event edited",
        lambda f: _edit_line(f, 1, b'"u-0"', b'"u-1"'),
        "FAIL: events.jsonl line 2 (seq 4): inclusion proof does not verify",
    ),
    (
        "events reordered",
        lambda f: _swap_lines(f, 2),
        "FAIL: events.jsonl line 4 (seq 9): seq not after the previous line's seq 17",
    ),
    (
        "event swapped for a forged one",
        lambda f: _edit_line(f, 0, b'"log_id":"coding-audit"', b'"log_id":"other-log"'),
        "FAIL: events.jsonl line 1: payload log_id is not 'coding-audit'",
    ),
]


@pytest.mark.parametrize(
    ("edit", "message"), [t[1:] for t in SCOPED_TAMPERS], ids=[t[0] for t in SCOPED_TAMPERS]
)
def test_tampered_scoped_bundle_fails(
    ledger: Ledger, tmp_path: Path, edit: Callable[[dict[str, bytes]], None], message: str
) -> None:
    clean = _scoped(ledger, tmp_path / "clean.zip")
    bad = _rewrite(clean, tmp_path / "bad.zip", edit, resign=KEY)
    code, out = _verify_zip(bad)
    assert code == 1
    assert out.startswith(message), out


def test_in_process_main_and_fast_path_agree_with_reference(ledger: Ledger, tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bundle_verify", Path(__file__).parents[2] / "audit/export/verify.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    bundle = _full(ledger, tmp_path / "full.zip")
    assert mod.main([str(bundle), "--jobs", "1"]) == 0
    samples = [
        *ledger.payloads,
        b'{"a":1.5,"seq":1}',
        b'{"a":-0,"seq":1}',
        b'{"a":0,"seq":-1}',
        b'{"seq":1,"seq":1}',
        b'{"a":"x\\u001fy","seq":1}',
        b'{"a":"x\\u001Fy","seq":1}',
        b'{"a":"\\/","seq":1}',
        b'{"a":"x, y"}',
        b'{"a":": -0"}',
        b'{"a":[1,{"c":1,"b":2}]}',
        b'{"a":[]} ',
        b"[1,2]",
        b'{"a":true,"b":false,"c":null}',
        b'{"a":"\xff"}',
        b'{"a":01}',
        b'{"a":"\x01"}',
        b'{"b":1,"a":{}}',
        b'{"a":{"b":{"c":{}}}}',
    ]
    for line in samples:
        # the fast path (template cache) and the reference definition agree, first time and cached
        for _ in range(2):
            assert mod._seq_and_log(line) == mod._slow(line), line


# --------------------------------------------------------------------------------------------------
# Signed manifests: cut bundles are refused by verify.py run with the system python


def _system_verify(bundle: Path, *extra: str) -> tuple[int, str]:
    script = bundle.parent / "verify_tool.py"
    if not script.exists():
        with zipfile.ZipFile(bundle) as zf:
            script.write_bytes(zf.read("verify.py"))
    proc = subprocess.run(
        [system_python(), str(script), *extra, str(bundle)], capture_output=True, text=True, timeout=120
    )
    return proc.returncode, proc.stdout + proc.stderr


def _drop_event_and_proof(files: dict[str, bytes]) -> None:
    lines = _lines(files)
    seq = json.loads(lines[2])["seq"]
    del lines[2]
    files["events.jsonl"] = b"".join(lines)
    proofs = json.loads(files["proofs.json"])
    del proofs[str(seq)]
    files["proofs.json"] = json.dumps(proofs).encode()


def _widen_scope(files: dict[str, bytes]) -> None:
    manifest = json.loads(files["manifest.json"])
    manifest["scope"]["provider_ids"] = ["p-0", "p-1"]
    files["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"


def _swap_signature(other: Path) -> Callable[[dict[str, bytes]], None]:
    def edit(files: dict[str, bytes]) -> None:
        with zipfile.ZipFile(other) as zf:
            files["manifest.sig"] = zf.read("manifest.sig")

    return edit


NOT_SIGNED = (
    "FAIL: manifest.sig does not sign this manifest.json (its sha256 differs): the manifest was changed"
)


def test_cut_or_edited_bundles_are_refused_by_the_system_python(ledger: Ledger, tmp_path: Path) -> None:
    clean = _scoped(ledger, tmp_path / "clean.zip")
    other = _full(ledger, tmp_path / "other.zip")
    assert _system_verify(clean)[0] == 0
    classes: list[tuple[str, Callable[[dict[str, bytes]], None], bool, str]] = [
        ("event and its proof dropped, manifest hashes fixed", _drop_event_and_proof, True, NOT_SIGNED),
        (
            "report CSV edited, its hash fixed",
            lambda f: f.__setitem__("report.csv", b"provider,events\np-1,5\n"),
            True,
            NOT_SIGNED,
        ),
        ("signed manifest edited (scope widened)", _widen_scope, False, NOT_SIGNED),
        ("signature swapped for another bundle's", _swap_signature(other), False, NOT_SIGNED),
        ("signature removed", lambda f: f.pop("manifest.sig"), False, "FAIL: manifest.sig is missing"),
        (
            "signature garbled",
            lambda f: f.__setitem__("manifest.sig", b"not a note\n"),
            False,
            "FAIL: manifest.sig is not a signed note",
        ),
        (
            "a checkpoint signed as the manifest",
            lambda f: f.__setitem__("manifest.sig", ledger.note(N).encode()),
            False,
            "FAIL: manifest.sig is not a signed export manifest",
        ),
    ]
    for name, edit, rehash, message in classes:
        bad = _rewrite(clean, tmp_path / f"{len(name)}-{name[:8]}.zip".replace(" ", "_"), edit, rehash=rehash)
        code, out = _system_verify(bad)
        assert (code, out.strip()) == (1, message) or (code == 1 and out.startswith(message)), (name, out)


def test_a_key_holder_who_drops_an_event_still_fails_on_the_signed_count(
    ledger: Ledger, tmp_path: Path
) -> None:
    clean = _scoped(ledger, tmp_path / "clean.zip")
    bad = _rewrite(clean, tmp_path / "bad.zip", _drop_event_and_proof, resign=KEY)
    code, out = _system_verify(bad)
    assert code == 1 and out.startswith("FAIL: events.jsonl holds 5 events but the signed manifest says 6"), (
        out
    )

    def fix_count(files: dict[str, bytes]) -> None:
        _drop_event_and_proof(files)
        _set_manifest(files, event_count=5, seq_range=[3, 39])

    bad = _rewrite(clean, tmp_path / "bad2.zip", fix_count, resign=KEY)
    code, out = _system_verify(bad)
    assert code == 1 and out.startswith(
        "FAIL: the events' seqs do not match the signed manifest's seq_digest"
    )


def _replace_key(files: dict[str, bytes], ledger: Ledger) -> None:
    """A forger with their own key: new public_key.txt and checkpoints, everything re-signed."""
    files["public_key.txt"] = public_key_text(LOG, OTHER.public_key()).encode()
    files["checkpoints.txt"] = ledger.note(N, key=OTHER).encode()


def test_a_bundle_re_signed_with_another_key_fails_against_the_published_key(
    ledger: Ledger, tmp_path: Path
) -> None:
    clean = _scoped(ledger, tmp_path / "clean.zip")
    forged = _rewrite(clean, tmp_path / "forged.zip", lambda f: _replace_key(f, ledger), resign=OTHER)
    code, out = _system_verify(forged)
    assert code == 0 and f"key: {public_key_text(LOG, OTHER.public_key())}" in out  # whole, but whose?
    published = public_key_text(LOG, KEY.public_key())
    code, out = _system_verify(forged, "--key", published)
    assert code == 1 and out.startswith("FAIL: public_key.txt holds key coding-audit+"), out
    (tmp_path / "published.vkey").write_text(published + "\n")
    assert _system_verify(clean, "--key", str(tmp_path / "published.vkey"))[0] == 0
    (tmp_path / "old.note").write_text(ledger.note(10))
    code, out = _system_verify(forged, "--previous", str(tmp_path / "old.note"))
    assert code == 1 and "--previous" in out and "signed by another key" in out, out


def test_format_1_bundles_are_refused(ledger: Ledger, tmp_path: Path) -> None:
    def downgrade(files: dict[str, bytes]) -> None:
        files.pop("manifest.sig")
        _set_manifest(files, format_version=1)

    bad = _rewrite(_scoped(ledger, tmp_path / "clean.zip"), tmp_path / "v1.zip", downgrade)
    code, out = _system_verify(bad)
    assert code == 1 and out.startswith("FAIL: manifest.json is format 1, whose manifest is not signed")


# --------------------------------------------------------------------------------------------------
# --previous: the log only grew since an older checkpoint


def _previous(tmp_path: Path, note: str, name: str = "previous.note") -> str:
    path = tmp_path / name
    path.write_text(note)
    return str(path)


def _rewritten_note(ledger: Ledger, size: int) -> str:
    """A checkpoint our key really signed, of a history that was later rewritten (seq 1 changed)."""
    leaves = list(ledger.leaves[:size])
    leaves[1] = leaf_hash(b'{"rewritten":true}')
    body = format_checkpoint(LOG, size, merkle_root(leaves), ledger.chains[size - 1], T0)
    return sign_note(body, LOG, KEY)


def test_previous_on_a_full_bundle_recomputes_the_old_root(ledger: Ledger, tmp_path: Path) -> None:
    bundle = _full(ledger, tmp_path / "full.zip")
    for size in (1, 10, 17, N):
        code, out = _system_verify(bundle, "--previous", _previous(tmp_path, ledger.note(size)))
        assert code == 0, out
        assert f"previous: --previous {tmp_path / 'previous.note'}, tree size {size} of " in out
        assert f"the log only grew since (consistent with tree size {N})" in out
    code, out = _system_verify(bundle, "--previous", _previous(tmp_path, _rewritten_note(ledger, 17)))
    assert code == 1 and out.startswith(
        f"FAIL: events.jsonl line 17 (seq 16): differs from --previous {tmp_path / 'previous.note'}"
    ), out
    newer = Ledger(N + 5).note(N + 5)
    code, out = _system_verify(bundle, "--previous", _previous(tmp_path, newer))
    assert code == 1 and "is newer than this bundle's tree size 40" in out


def test_previous_on_a_scoped_bundle_uses_the_consistency_proofs_it_carries(
    ledger: Ledger, tmp_path: Path
) -> None:
    bundle = _scoped(ledger, tmp_path / "scoped.zip", earlier=[10, 25])
    with zipfile.ZipFile(bundle) as zf:
        assert set(json.loads(zf.read("consistency.json"))) == {"10", "25"}
        assert json.loads(zf.read("manifest.json"))["checkpoint_sizes"] == [10, 25, N]
    assert _system_verify(bundle)[0] == 0
    for size in (10, 25, N):
        code, out = _system_verify(bundle, "--previous", _previous(tmp_path, ledger.note(size)))
        assert code == 0 and f"tree size {size} of " in out, out
    code, out = _system_verify(bundle, "--previous", _previous(tmp_path, ledger.note(17)))
    assert (
        code == 1
        and "consistency.json holds no proof from that tree size; ask for an export with previous: [17]"
        in out
    )
    code, out = _system_verify(bundle, "--previous", _previous(tmp_path, _rewritten_note(ledger, 10)))
    assert code == 1 and "the consistency proof to tree size 40 does not verify" in out, out
    code, out = _system_verify(bundle, "--previous", _previous(tmp_path, ledger.note(10, key=OTHER)))
    assert code == 1 and "signed by another key" in out


def test_a_bad_consistency_proof_in_a_scoped_bundle_is_named(ledger: Ledger, tmp_path: Path) -> None:
    def flip(files: dict[str, bytes]) -> None:
        links = json.loads(files["consistency.json"])
        links["25"][0] = ("0" if links["25"][0][0] != "0" else "1") + links["25"][0][1:]
        files["consistency.json"] = json.dumps(links).encode()

    clean = _scoped(ledger, tmp_path / "scoped.zip", earlier=[10, 25])
    bad = _rewrite(clean, tmp_path / "bad.zip", flip, resign=KEY)
    code, out = _system_verify(bad)
    assert code == 1 and out.startswith(
        "FAIL: checkpoint 25 (tree size 25): the consistency proof to tree size 40 does not verify"
    ), out
