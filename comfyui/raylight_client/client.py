"""HTTP client for `raylight serve`, standard library only (http.client).

One method per endpoint, plus ``sample`` and ``generate``, which submit a job, follow its
server-sent events (calling back with per-step progress, and cancelling the job when the
caller's ``should_cancel`` says so), then fetch the result. Every failure answer becomes a
RaylightError carrying the server's status and message.

A job is never left running for nobody: whatever ends ``follow`` early - ``should_cancel``,
an exception from the caller's ``on_progress`` (ComfyUI's progress hook raises its
InterruptProcessingException there when the user presses Cancel), KeyboardInterrupt, a lost
connection - cancels the job on the server before the exception goes on.
"""

import http.client
import json
import socket
import urllib.parse

from . import safetensors_io


class RaylightError(RuntimeError):
    def __init__(self, status, message):
        super().__init__("raylight server: %s (HTTP %s)" % (message, status))
        self.status = status
        self.message = message


class RaylightCancelled(RaylightError):
    def __init__(self, message="the job was cancelled"):
        super().__init__(409, message)


class RaylightClient:
    def __init__(self, url="http://127.0.0.1:8690", token=None, timeout=60.0):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError("server URL must look like http://HOST:PORT, got %r" % url)
        self.url = url
        self.host = u.hostname
        self.port = u.port or 80
        self.token = token
        self.timeout = timeout

    # -- transport ---------------------------------------------------------------------

    def _connection(self, timeout=None):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)

    def _headers(self, content_type=None):
        h = {"Accept": "*/*"}
        if content_type:
            h["Content-Type"] = content_type
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        return h

    def request(self, method, path, body=None, content_type=None, timeout=None):
        """(status, headers, body bytes); raises OSError when the server cannot be reached."""
        conn = self._connection(timeout)
        try:
            conn.request(method, path, body=body, headers=self._headers(content_type))
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def _json(self, method, path, payload=None, timeout=None, ok=(200,)):
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        status, _, data = self.request(method, path, body, "application/json" if body else None, timeout)
        return self._check(status, data, ok)

    @staticmethod
    def _check(status, data, ok=(200,)):
        if status in ok:
            try:
                return json.loads(data.decode("utf-8")) if data else {}
            except ValueError:
                raise RaylightError(status, "the answer is not JSON: this is not a raylight server")
        try:
            message = json.loads(data.decode("utf-8")).get("error", "")
        except (ValueError, AttributeError):
            # Not our server's JSON: say so rather than quote someone else's HTML page.
            raise RaylightError(status, "the answer is not a raylight server's (HTTP %s, %d bytes that are not "
                                        "JSON); is another service using this port?" % (status, len(data)))
        if status == 409 and "cancelled" in message:
            raise RaylightCancelled(message)
        raise RaylightError(status, message or "unexpected answer")

    # -- endpoints -----------------------------------------------------------------------

    def health(self, timeout=5.0):
        return self._json("GET", "/v1/health", timeout=timeout)

    def alive(self):
        try:
            h = self.health()
            return h.get("service") == "raylight" and h.get("status") == "ok"
        except (OSError, RaylightError, ValueError):
            return False

    def probe(self, timeout=5.0):
        """What answers at the URL: ("raylight", health), ("foreign", why) for another
        service, or ("none", why) when nothing answers. A raylight server that refuses
        (a token is needed, or a wrong one was given) raises its RaylightError."""
        try:
            status, headers, data = self.request("GET", "/v1/health", timeout=timeout)
        except (OSError, http.client.HTTPException) as e:
            return "none", str(e)
        try:
            body = json.loads(data.decode("utf-8"))
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("service") == "raylight":
            return "raylight", body  # 503 too: stopping, or a rank does not answer (body["status"])
        if status == 401 and isinstance(body, dict) and "error" in body:
            raise RaylightError(status, body["error"])
        return "foreign", "HTTP %s, %s" % (status, headers.get("content-type", "no content type"))

    def memory(self):
        return self._json("GET", "/v1/memory")

    def model(self):
        return self._json("GET", "/v1/models").get("model")

    def jobs(self):
        return self._json("GET", "/v1/jobs")["jobs"]

    def job(self, job_id):
        return self._json("GET", "/v1/jobs/" + job_id)

    def load(self, model, ulysses=None, ring=None, cfg_parallel=False, dp=None, fsdp=False, offload=False,
             gpu_memory_limit_gib=None, timeout=3600.0, model_low=None):
        """Loads a model with a layout (waits for it); returns the model's description.
        gpu_memory_limit_gib caps each rank's GPU memory (None: no cap); model_low: the
        low-noise expert of a two-expert model (Wan 2.2 A14B), `model` being the high one."""
        req = {"model": model, "cfg_parallel": bool(cfg_parallel), "fsdp": bool(fsdp), "offload": bool(offload)}
        if model_low:
            req["model_low"] = model_low
        if gpu_memory_limit_gib:
            req["gpu_memory_limit_gib"] = float(gpu_memory_limit_gib)
        for k, v in (("ulysses", ulysses), ("ring", ring), ("dp", dp)):
            if v is not None:
                req[k] = int(v)
        return self._json("POST", "/v1/models/load?wait=1", req, timeout=timeout)

    def set_loras(self, loras, merge=False, skip_unmatched=False, timeout=3600.0):
        """Replaces the loaded model's LoRAs (a list of {"path", "strength"}; [] removes them)
        without loading the model again; returns the model's description."""
        req = {"loras": [{"path": l["path"], "strength": float(l.get("strength", 1.0))} for l in loras]}
        if loras and merge:
            req["lora_merge"] = True
        if loras and skip_unmatched:
            req["lora_skip_unmatched"] = True
        return self._json("POST", "/v1/models/loras?wait=1", req, timeout=timeout)

    def unload(self, timeout=600.0):
        return self._json("POST", "/v1/models/unload?wait=1", {}, timeout=timeout)

    def cancel(self, job_id):
        return self._json("POST", "/v1/jobs/%s/cancel" % job_id)

    def shutdown(self):
        return self._json("POST", "/v1/shutdown", timeout=10.0)

    def submit_sample(self, tensors, params):
        """Queues a sampling job: ``tensors`` maps names to RawTensor. Returns the job id."""
        body = safetensors_io.encode(tensors, {"request": json.dumps(params)})
        status, _, data = self.request("POST", "/v1/sample", body, "application/octet-stream")
        return self._check(status, data, ok=(202,))["id"]

    def submit_generate(self, params):
        return self._json("POST", "/v1/generate", params, ok=(202,))["id"]

    def submit_tensors(self, path, tensors, params):
        """Queues a job whose body is tensors (``/v1/sample``, ``/v1/vae/decode``,
        ``/v1/vae/encode``) with ``params`` as its request; returns the job id."""
        body = safetensors_io.encode(tensors, {"request": json.dumps(params)})
        status, _, data = self.request("POST", path, body, "application/octet-stream")
        return self._check(status, data, ok=(202,))["id"]

    def _tensor_job(self, job_id, on_progress=None, should_cancel=None):
        self.follow(job_id, on_progress, should_cancel)
        _, data = self.result(job_id)
        return safetensors_io.decode(data)[0]

    def text_encode(self, prompt, should_cancel=None, **files):
        """The loaded model's conditioning tensors for ``prompt``, made by its text encoders on
        the server's ranks ({"context": RawTensor, ...}); ``files``: text_encoder,
        text_encoder_2, tokenizer (default: an embedded model's own)."""
        params = dict({k: v for k, v in files.items() if v}, prompt=prompt)
        job_id = self._json("POST", "/v1/text/encode", params, ok=(202,))["id"]
        return self._tensor_job(job_id, should_cancel=should_cancel)

    def vae_decode(self, latent, vae=None, tile=None, spread=None, should_cancel=None):
        """Pixels in [-1, 1] ([B,] 3, F, H, W) of a latent in the model's space."""
        params = {k: v for k, v in (("vae", vae), ("tile", tile), ("spread", spread)) if v is not None}
        job_id = self.submit_tensors("/v1/vae/decode", {"latent": latent}, params)
        return self._tensor_job(job_id, should_cancel=should_cancel)["pixels"]

    def vae_encode(self, pixels, vae=None, should_cancel=None):
        """The latent (model's space) of pixels in [-1, 1] ([B,] 3, F, H, W)."""
        params = {"vae": vae} if vae else {}
        job_id = self.submit_tensors("/v1/vae/encode", {"pixels": pixels}, params)
        return self._tensor_job(job_id, should_cancel=should_cancel)["latent"]

    def events(self, job_id, timeout=120.0):
        """Yields the job's status dicts from its event stream until it finishes, and None
        for each keep-alive (every 2 s while nothing changes, e.g. while the job is queued),
        so a follower can look at its cancel flag even then."""
        conn = self._connection(timeout)
        try:
            conn.request("GET", "/v1/jobs/%s/events" % job_id, headers=self._headers())
            resp = conn.getresponse()
            if resp.status != 200:
                self._check(resp.status, resp.read())
            event, data = None, []
            while True:
                line = resp.fp.readline()
                if not line:
                    return
                line = line.decode("utf-8").rstrip("\r\n")
                if line == "":
                    if event == "status" and data:
                        status = json.loads("\n".join(data))
                        yield status
                        if status.get("state") not in ("queued", "running"):
                            return
                    event, data = None, []
                elif line.startswith(":"):
                    yield None
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
        finally:
            conn.close()

    def result(self, job_id, timeout=600.0):
        """(content type, bytes) of a finished job; RaylightError for a failed one."""
        status, headers, data = self.request("GET", "/v1/jobs/%s/result?wait=1" % job_id, timeout=timeout)
        if status != 200:
            self._check(status, data)
        return headers.get("content-type", ""), data

    def _cancel_quietly(self, job_id):
        try:
            self._json("POST", "/v1/jobs/%s/cancel" % job_id, timeout=10.0)
        except (OSError, http.client.HTTPException, RaylightError, ValueError):
            pass  # the server is gone or the job already ended: nothing runs on

    def follow(self, job_id, on_progress=None, should_cancel=None):
        """Follows a job to its end, reporting progress and cancelling on request (and on
        any exception, see the module comment)."""
        cancel_sent = False
        last = None
        try:
            for status in self.events(job_id):
                if should_cancel and not cancel_sent and should_cancel():
                    self.cancel(job_id)
                    cancel_sent = True
                if status is None:
                    continue
                last = status
                if on_progress and status.get("total"):
                    on_progress(status.get("step", 0), status["total"])
        except (socket.timeout, http.client.HTTPException, ConnectionError) as e:
            if not cancel_sent:
                self._cancel_quietly(job_id)
            raise RaylightError(0, "lost the connection while following job %s: %s" % (job_id, e))
        except BaseException:
            if not cancel_sent:
                self._cancel_quietly(job_id)
            raise
        if last is None or last.get("state") in ("queued", "running"):
            raise RaylightError(0, "the server went away while running job %s" % job_id)
        if last.get("state") == "cancelled":
            raise RaylightCancelled(last.get("error", "the job was cancelled"))
        return last

    def sample(self, tensors, params, on_progress=None, should_cancel=None):
        """Samples latents; returns the result's tensors ({"latent": RawTensor})."""
        job_id = self.submit_sample(tensors, params)
        self.follow(job_id, on_progress, should_cancel)
        _, data = self.result(job_id)
        return safetensors_io.decode(data)[0]

    def generate(self, params, on_progress=None, should_cancel=None):
        """Prompt to video: (content type, bytes)."""
        job_id = self.submit_generate(params)
        self.follow(job_id, on_progress, should_cancel)
        return self.result(job_id)
