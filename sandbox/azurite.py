"""Start Azurite (the npm package in ``node_modules``) on free ports chosen at run time.

Usage::

    azurite = start_azurite(tmp_path)
    try:
        client = QueueServiceClient.from_connection_string(azurite.connection_string)
        ...
    finally:
        azurite.stop()

``Azurite`` is also a context manager. Never assume the default ports 10000-10002: another Azurite
may hold them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from sandbox.ports import free_ports, port_open

REPO_ROOT = Path(__file__).resolve().parents[1]
AZURITE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite"
HOST = "127.0.0.1"
ACCOUNT_NAME = "devstoreaccount1"
# The well-known development storage key, published in Azurite's README and Microsoft's docs.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_ATTEMPTS = 3


class AzuriteError(RuntimeError):
    """Azurite did not come up; the message carries its stderr."""


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    blob_port: int
    queue_port: int
    table_port: int
    workdir: Path
    host: str = HOST

    @property
    def blob_endpoint(self) -> str:
        return f"http://{self.host}:{self.blob_port}/{ACCOUNT_NAME}"

    @property
    def queue_endpoint(self) -> str:
        return f"http://{self.host}:{self.queue_port}/{ACCOUNT_NAME}"

    @property
    def table_endpoint(self) -> str:
        return f"http://{self.host}:{self.table_port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        """An explicit connection string; ``UseDevelopmentStorage=true`` would point at the default ports."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};QueueEndpoint={self.queue_endpoint};TableEndpoint={self.table_endpoint};"
        )

    @property
    def stderr_path(self) -> Path:
        return self.workdir / "azurite.stderr.log"

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate, then kill if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)

    def __enter__(self) -> Azurite:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _launch(
    tmp_dir: Path, timeout: float, ports: tuple[int, int, int] | None = None, in_memory: bool = True
) -> Azurite:
    if not AZURITE_BIN.exists():
        raise AzuriteError(f"{AZURITE_BIN} not found: run 'npm install' in {REPO_ROOT}")
    if shutil.which("node") is None:
        raise AzuriteError("node is not on PATH; Azurite needs Node.js")
    blob, queue, table = ports or free_ports(3)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = tmp_dir / "azurite.stderr.log"
    command = [
        str(AZURITE_BIN),
        "--silent",
        *(["--inMemoryPersistence"] if in_memory else ["--location", str(tmp_dir / "data")]),
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--blobHost",
        HOST,
        "--queueHost",
        HOST,
        "--tableHost",
        HOST,
        "--blobPort",
        str(blob),
        "--queuePort",
        str(queue),
        "--tablePort",
        str(table),
    ]
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(command, cwd=tmp_dir, stdout=subprocess.DEVNULL, stderr=stderr)  # noqa: S603
    azurite = Azurite(process=process, blob_port=blob, queue_port=queue, table_port=table, workdir=tmp_dir)
    try:
        _wait_for_ports(azurite, stderr_path, timeout)
    except BaseException:  # a timeout, or Ctrl-C / SIGTERM while waiting: never leave node running
        azurite.stop()
        raise
    return azurite


def _wait_for_ports(azurite: Azurite, stderr_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = {azurite.blob_port, azurite.queue_port, azurite.table_port}
    while pending:
        if azurite.process.poll() is not None:
            raise AzuriteError(
                f"Azurite exited with code {azurite.process.returncode}: "
                f"{stderr_path.read_text(errors='replace').strip() or '(no stderr)'}"
            )
        if time.monotonic() > deadline:
            raise AzuriteError(
                f"Azurite did not open ports {sorted(pending)} within {timeout:.0f}s: "
                f"{stderr_path.read_text(errors='replace').strip() or '(no stderr)'}"
            )
        pending = {port for port in pending if not port_open(HOST, port)}
        if pending:
            time.sleep(0.05)


def start_azurite(
    tmp_dir: Path,
    *,
    timeout: float = 20.0,
    ports: tuple[int, int, int] | None = None,
    in_memory: bool = True,
) -> Azurite:
    """Launch Azurite with data in memory, run from ``tmp_dir``; wait until all three ports listen.

    (``--location`` cannot be combined with ``--inMemoryPersistence``; the working directory is the workspace.)

    A port taken between choosing and binding makes Azurite exit at once; that is retried with new ports.
    """
    last: AzuriteError | None = None
    for attempt in range(START_ATTEMPTS):
        try:
            return _launch(tmp_dir / f"run{attempt}" if attempt else tmp_dir, timeout, ports, in_memory)
        except AzuriteError as exc:
            if "EADDRINUSE" not in str(exc) or ports:
                raise
            last = exc
    assert last is not None
    raise last
