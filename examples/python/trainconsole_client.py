"""Report a training run to trainconsole, and stop it from the console's page.

Python 3.8+, standard library only. Copy this file next to your training script.

    from trainconsole_client import Run

    run = Run(name="gpt-small", total_tokens=10_000_000, config={"lr": 3e-4})
    for step in range(1, steps + 1):
        loss = train_step()
        run.log(step=step, tokens=step * tokens_per_step, loss=loss, lr=lr)
        if run.should_stop():                      # Abort on the page (or Ctrl-C)
            save_checkpoint(path)
            run.checkpoint(step=step, tokens=step * tokens_per_step, path=path)
            run.finish("aborted")
            break
    else:
        run.finish()                               # "completed"

Two ways to reach the console:

* Under ``trainconsole run -- python train.py`` (the environment has
  ``TRAINCONSOLE_EVENTS=stdout``) every event is one JSON line on stdout, which the wrapper
  reports; the page's Abort arrives as SIGINT.
* Otherwise over HTTP to the console at ``url`` (default ``$TRAINCONSOLE_URL``, else
  ``http://127.0.0.1:7437``), started with ``trainconsole serve`` or ``trainconsole train``.
  A background thread posts the events in batches; each batch carries an
  ``Idempotency-Key``, so a batch posted again after a lost answer is stored once. While the
  console cannot be reached the events wait in memory (at most ``max_buffered``; beyond it
  the oldest are dropped and counted) and are posted when it is back. The training loop
  never waits on the console and never gets an exception from it.

An exception that ends the script reports the run ``failed`` with the exception's text.

``should_stop()`` turns true when the console asks the run to stop (it learns so from the
answer to its next post, at most ``poll_secs`` later) or on the first Ctrl-C (SIGINT); the
first time it does, the client reports ``state: stopping``. A second Ctrl-C raises
``KeyboardInterrupt`` as usual.
"""

import atexit
import collections
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

__all__ = ["Run"]

DEFAULT_URL = "http://127.0.0.1:7437"
# The console's limit on a run name, in characters; a longer name is cut to it, ending in "…".
MAX_NAME_CHARS = 200


class Run:
    """One training run as the console shows it.

    Budget: give ``total_tokens`` (tokens of the whole run) or ``total_steps`` (optimizer
    steps); the console computes progress, tokens/s and the ETA from the ``tokens`` and
    ``step`` of each ``log``.
    """

    def __init__(self, name="", total_tokens=None, total_steps=None, config=None, grad_accum=None,
                 url=None, flush_secs=0.5, poll_secs=1.0, batch_size=1000, max_buffered=100_000,
                 timeout_secs=5.0, handle_sigint=True):
        name = str(name)
        if len(name) > MAX_NAME_CHARS:
            name = name[:MAX_NAME_CHARS - 1] + "…"
        self.name = name
        self.id = None
        self.page_url = None
        self._stdout = os.environ.get("TRAINCONSOLE_EVENTS") == "stdout"
        self._url = (url or os.environ.get("TRAINCONSOLE_URL") or DEFAULT_URL).rstrip("/")
        self._flush_secs = flush_secs
        self._poll_secs = poll_secs
        self._batch_size = batch_size
        self._max_buffered = max_buffered
        self._timeout = timeout_secs
        self._stop = threading.Event()
        self._stop_reported = False
        self._finished = False
        self._lock = threading.Lock()
        self._pending = collections.deque()
        self._retry = None  # (key, body, count) of a batch whose post failed
        self._dropped = 0
        self._batches = 0
        self._client_id = uuid.uuid4().hex[:12]
        self._token = None
        self._warned = set()
        self._wake = threading.Event()
        self._closing = threading.Event()
        start = {"name": name, "config": config if config is not None else {}}
        for key, value in (("total_tokens", total_tokens), ("total_steps", total_steps), ("grad_accum", grad_accum)):
            if value is not None:
                start[key] = int(value)
        self._start = start
        if handle_sigint:
            self._install_sigint_handler()
        self._install_excepthook()
        if self._stdout:
            self._emit({"kind": "run_start", **start})
            self.id = os.environ.get("TRAINCONSOLE_RUN_ID")
            self.page_url = os.environ.get("TRAINCONSOLE_RUN_URL")
        else:
            self._create()  # one quick try, so that the address can be printed at once
            self._thread = threading.Thread(target=self._send_loop, name="trainconsole-client", daemon=True)
            self._thread.start()
            atexit.register(self._at_exit)

    # ---- What a training loop calls --------------------------------------------------------

    def log(self, step, tokens, loss, lr=None, grad_norm=None, step_time_ms=None, **extra):
        """Report one optimizer step: ``step`` counts from 1, ``tokens`` is cumulative,
        ``loss`` in nats per token (NaN and infinities are kept)."""
        event = {"kind": "step", "step": int(step), "tokens": int(tokens), "loss": _float(loss)}
        for key, value in (("lr", lr), ("grad_norm", grad_norm), ("step_time_ms", step_time_ms)):
            if value is not None:
                event[key] = _float(value)
        event.update(extra)
        self._emit(event)

    def eval(self, step, val_loss):
        """Report a validation loss measured after ``step``."""
        self._emit({"kind": "eval", "step": int(step), "val_loss": _float(val_loss)})

    def sample(self, step, text):
        """Report text generated by the model."""
        self._emit({"kind": "sample", "step": int(step), "text": str(text)})

    def checkpoint(self, step, tokens, path):
        """Report a checkpoint that is completely written at ``path``."""
        self._emit({"kind": "checkpoint", "step": int(step), "tokens": int(tokens), "path": str(path)})

    def should_stop(self):
        """Whether the run was asked to stop (Abort on the page, or Ctrl-C). The first time
        it is true, ``state: stopping`` is reported: save, report the checkpoint, then
        ``finish("aborted")``."""
        if self._stop.is_set() and not self._stop_reported:
            self._stop_reported = True
            self._emit({"kind": "state", "state": "stopping", "message": "saving a checkpoint before stopping"})
        return self._stop.is_set()

    def finish(self, state="completed", message="", timeout_secs=30.0):
        """Report the end (``completed``, ``aborted`` or ``failed``) and deliver every event,
        waiting at most ``timeout_secs`` (2 s when the console was never reached). Returns
        whether everything was delivered."""
        if self._finished:
            return True
        self._finished = True
        event = {"kind": "state", "state": state}
        if message:
            event["message"] = str(message)
        self._emit(event)
        if self._stdout:
            return True
        return self._drain(timeout_secs)

    # ---- Delivery --------------------------------------------------------------------------

    def _emit(self, event):
        event.setdefault("time", time.time())
        if self._stdout:
            # Non-finite floats go out as bare NaN/Infinity, which the console accepts.
            line = json.dumps(event)
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except (OSError, ValueError):
                pass
            return
        with self._lock:
            if len(self._pending) >= self._max_buffered:
                self._pending.popleft()
                self._dropped += 1
                if self._dropped == 1:
                    self._warn("buffer", f"the console has not taken events for a while; dropping the oldest beyond {self._max_buffered}")
            self._pending.append(event)
            full = len(self._pending) >= self._batch_size
        if full:
            self._wake.set()

    def _create(self):
        """POST /api/runs; True once the run exists."""
        if self._token is not None:
            return True
        status, answer = self._post(self._url + "/api/runs", json.dumps(self._start), None, None, "application/json")
        if status == 201 and isinstance(answer, dict) and answer.get("token"):
            self.id, self._token = answer["id"], answer["token"]
            self.page_url = answer.get("url") or f"{self._url}/runs/{self.id}"
            print(f"trainconsole: reporting run {self.id} to {self.page_url}", file=sys.stderr)
            return True
        if status is None:
            self._warn("unreachable", f"cannot reach the console at {self._url} ({answer}); training goes on, events wait and are sent when it is back")
        else:
            self._warn("create", f"the console at {self._url} refused to create the run ({status}): {answer}")
        return False

    def _send_loop(self):
        delay = self._flush_secs
        last_post = 0.0
        while True:
            self._wake.wait(timeout=delay)
            self._wake.clear()
            closing = self._closing.is_set()
            if not self._create():
                delay = min(max(delay * 2, self._flush_secs), 5.0)
                if closing and not self._pending:
                    return
                continue
            sent = self._send_some(poll=time.monotonic() - last_post >= self._poll_secs)
            if sent is None:  # unreachable: back off, keep the batch
                delay = min(max(delay * 2, self._flush_secs), 5.0)
                continue
            if sent:
                last_post = time.monotonic()
            delay = self._flush_secs
            with self._lock:
                more = bool(self._pending) or self._retry is not None
            if more:
                self._wake.set()
            elif closing:
                return

    def _send_some(self, poll):
        """Post one batch (or an empty poll). True if posted, False if nothing to do, None
        if the console could not be reached (the batch is kept for the next try)."""
        with self._lock:
            if self._retry is None and self._pending:
                count = min(len(self._pending), self._batch_size)
                events = [self._pending.popleft() for _ in range(count)]
                self._batches += 1
                body = "\n".join(json.dumps(e) for e in events)
                self._retry = (f"{self._client_id}-{self._batches}", body, count)
            batch = self._retry
        if batch is None and not poll:
            return False
        key, body, count = batch if batch is not None else (None, "", 0)
        status, answer = self._post(f"{self._url}/api/runs/{self.id}/events", body, self._token, key, "application/x-ndjson")
        if status is None or status >= 500 or status == 429:
            self._warn("unreachable", f"cannot reach the console at {self._url} ({answer or status}); events wait and are sent when it is back")
            return None
        self._warned.discard("unreachable")
        with self._lock:
            if batch is not None and self._retry is batch:
                self._retry = None
        if status != 200:
            # 400: a bad event (the ones before it are stored); 409: the run has ended.
            stored = answer.get("stored", 0) if isinstance(answer, dict) else 0
            error = answer.get("error", answer) if isinstance(answer, dict) else answer
            self._warn(f"refused-{status}", f"the console refused {count - stored} of {count} event(s) ({status}): {error}")
        if isinstance(answer, dict) and answer.get("abort_requested"):
            self._stop.set()
        return True

    def _post(self, url, body, token, key, content_type):
        """(status, decoded answer), or (None, reason) when the console cannot be reached."""
        headers = {"Content-Type": content_type}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if key:
            headers["Idempotency-Key"] = key
        request = urllib.request.Request(url, data=body.encode(), method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as err:
            answer = _decode(err.read())
            return err.code, answer.get("error", answer) if isinstance(answer, dict) else answer
        except (OSError, ValueError) as err:  # URLError, timeouts, resets
            return None, str(getattr(err, "reason", err))

    def _drain(self, timeout_secs):
        self._closing.set()
        self._wake.set()
        if self._token is None:
            # The console was never reached: one more short try, not a long wait.
            timeout_secs = min(timeout_secs, 2.0)
        self._thread.join(timeout_secs)
        with self._lock:
            left = len(self._pending) + (self._retry[2] if self._retry else 0)
        if left:
            print(f"trainconsole: {left} event(s) could not be delivered to {self._url}", file=sys.stderr)
        return left == 0

    def _at_exit(self):
        if not self._closing.is_set():
            self._drain(10.0)

    def _install_excepthook(self):
        """An exception that ends the script reports the run `failed` (or `aborted` for a
        second Ctrl-C) with its message, before Python prints it as usual."""
        previous = sys.excepthook

        def on_exception(kind, value, traceback):
            if not self._finished:
                if issubclass(kind, KeyboardInterrupt):
                    self.finish("aborted", "interrupted (Ctrl-C twice) without a final checkpoint", timeout_secs=10.0)
                else:
                    self.finish("failed", f"{kind.__name__}: {value}"[:500], timeout_secs=10.0)
            previous(kind, value, traceback)

        sys.excepthook = on_exception

    def _install_sigint_handler(self):
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum, frame):
            if self._stop.is_set():
                signal.signal(signal.SIGINT, previous if callable(previous) else signal.default_int_handler)
                raise KeyboardInterrupt
            print("trainconsole: stopping after this step (Ctrl-C again to quit at once)", file=sys.stderr)
            self._stop.set()

        signal.signal(signal.SIGINT, on_sigint)

    def _warn(self, what, message):
        if what not in self._warned:
            self._warned.add(what)
            print(f"trainconsole: {message}", file=sys.stderr)


def _float(value):
    """A plain float (from a float, int, NumPy or PyTorch scalar); NaN and infinities are
    kept and sent as bare NaN/Infinity, which the console reads as such."""
    return float(value)


def _decode(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
