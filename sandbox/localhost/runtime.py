"""Wiring: settings → app import → indexing → HTTP server, queue listeners and timers; and the graceful stop."""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, make_server

from .functions import AppIndex, FunctionSpec, index_app, load_app
from .http_app import HostApi, request_handler
from .invoker import Invoker
from .queues import QueueListener, QueueWatcher
from .settings import HostOptions, Settings, load_host_options, load_settings
from .storage import QueueStorage
from .timers import TimerRunner

log = logging.getLogger("localhost.host")


@dataclass(frozen=True)
class HostConfig:
    script_root: Path
    app: str = "function_app:app"
    host: str = "127.0.0.1"
    port: int = 7071
    grace_period: float = 10.0


class LocalHost:
    """The running host. :meth:`start` returns once everything listens; :meth:`stop` winds it down."""

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.state = "Starting"
        self.settings: Settings | None = None
        self.options = HostOptions()
        self.index = AppIndex(functions={}, errors={})
        self._storage = QueueStorage()
        self._invoker: Invoker | None = None
        self._listeners: dict[str, QueueListener] = {}
        self._timers: dict[str, TimerRunner] = {}
        self._server: BaseWSGIServer | None = None
        self._server_thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_port if self._server else self.config.port

    def start(self) -> None:
        root = self.config.script_root
        # The worker runs with the script root as cwd and on sys.path; settings must be in os.environ
        # before the app module is imported, since module-level code may read them.
        os.chdir(root)
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        self.settings, from_file = load_settings(root)
        if from_file:
            log.info("Loaded %d setting(s) from local.settings.json (the environment wins)", len(from_file))
        self.options = load_host_options(root, dict(self.settings))
        self.index = index_app(load_app(self.config.app), self.settings)
        watcher = QueueWatcher()
        invoker = Invoker(self._storage, self.options, str(root), on_enqueued=watcher.notify)
        self._invoker = invoker
        api = HostApi(
            functions=self.index.functions,
            errors=self.index.errors,
            warnings=self.index.warnings,
            invoker=invoker,
            admin_invoke=self._admin_invoke,
            state=lambda: self.state,
            route_prefix=self.options.route_prefix,
        )
        self._server = make_server(
            self.config.host, self.config.port, api, threaded=True, request_handler=request_handler(invoker)
        )
        self._server_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="http", daemon=True
        )
        for spec in self.index.functions.values():
            if spec.queue is not None:
                self._listeners[spec.name] = QueueListener(
                    spec,
                    invoker,
                    self._storage,
                    self.options.queues,
                    function_timeout=self.options.function_timeout,
                    watcher=watcher,
                )
            elif spec.timer is not None:
                self._timers[spec.name] = TimerRunner(spec, invoker)
        self._print_functions()
        self._server_thread.start()
        for listener in self._listeners.values():
            listener.start()
        for timer in self._timers.values():
            timer.start()
        self.state = "Running"
        log.info("Host started: http://%s:%d (%d function(s))", self.config.host, self.port, len(self.index.functions))

    def _print_functions(self) -> None:
        base = f"http://{self.config.host}:{self.port}"
        prefix = f"/{self.options.route_prefix}" if self.options.route_prefix else ""
        lines = ["Functions:", ""]
        for name in sorted(self.index.functions):
            spec = self.index.functions[name]
            if spec.http is not None:
                methods = ",".join(sorted(spec.http.methods)) if spec.http.methods else "ALL"
                lines.append(f"        {name}: [{methods}] {base}{prefix}/{spec.http.template}")
            else:
                lines.append(f"        {name}: {spec.trigger_type}")
            lines.append("")
        log.info("\n".join(lines))
        for name, error in sorted(self.index.errors.items()):
            log.error("The '%s' function is in error: %s", name, error)
        for name, warning in sorted(self.index.warnings.items()):
            log.warning("The '%s' function runs locally, but %s", name, warning)

    def _admin_invoke(self, spec: FunctionSpec, text: str) -> None:
        """Run a non-HTTP function in the background, counted as in-flight from this moment."""
        invoker = self._invoker
        assert invoker is not None
        listener, timer = self._listeners.get(spec.name), self._timers.get(spec.name)

        def run() -> None:
            try:
                if listener is not None:
                    listener.invoke_admin(text.encode("utf-8"))
                elif timer is not None:
                    timer.invoke_admin()
            except Exception:
                log.exception("Admin invocation of Functions.%s failed", spec.name)
            finally:
                invoker.release()

        invoker.hold()
        threading.Thread(target=run, name=f"admin-{spec.name}", daemon=True).start()

    def stop(self) -> bool:
        """Stop taking work, let in-flight work finish within the grace period; True when it all finished."""
        self.state = "Stopping"
        log.info("Stopping host...")
        if self._server is not None and self._server_thread is not None and self._server_thread.is_alive():
            self._server.shutdown()  # only safe once serve_forever runs: it would wait forever otherwise
        for listener in self._listeners.values():
            listener.stop()
        for timer in self._timers.values():
            timer.stop()
        for listener in self._listeners.values():
            listener.join(timeout=5)  # a receive in progress hands its messages back before we wait
        finished = True
        if self._invoker is not None and not self._invoker.wait_idle(self.config.grace_period):
            finished = False
            log.warning(
                "%d invocation(s) still running after %.0fs; exiting without them",
                self._invoker.active,
                self.config.grace_period,
            )
        for timer in self._timers.values():
            timer.join(timeout=2)
        if self._server is not None:
            self._server.server_close()
        self._storage.close()
        self.state = "Stopped"
        log.info("Host stopped")
        return finished
