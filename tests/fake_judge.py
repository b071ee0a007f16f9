"""An OpenAI-compatible judge on 127.0.0.1 for offline AlpacaEval tests.

It answers ``POST /v1/chat/completions`` the way AlpacaEval 2's weighted GPT-4
Turbo judge is read: one token, ``m`` or ``M``, with ``top_logprobs`` for both.
Its rule — the longer output wins, equal lengths draw — makes the win rate of a
set of outputs computable without it (:func:`expected_win_rate`). A rating
request (``preference_iterate``'s ``openai`` judge: ``[Response]`` then the text)
gets :func:`expected_rating`; a response containing ``UNRATEABLE`` gets prose, one
containing ``BADREQUEST`` an HTTP 400.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OUTPUT = re.compile(r'"model_identifier": "(m|M)",\s*"output": """(.*?)"""\n', re.DOTALL)


def expected_win_rate(model_outputs: Sequence[str], references: Sequence[str]) -> float:
    scores = [
        1.0 if len(m) > len(r) else 0.5 if len(m) == len(r) else 0.0
        for m, r in zip(model_outputs, references, strict=True)
    ]
    return 100.0 * sum(scores) / len(scores)


def expected_rating(response: str) -> str:
    """The fake judge's rating: the number of words, at most 10."""
    if "UNRATEABLE" in response:
        return "I cannot rate this."
    return str(min(10, len(response.split())))


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = "".join(str(m.get("content", "")) for m in body["messages"])
        if "BADREQUEST" in prompt:  # refused, as a server refuses (not retried by the client)
            self.send_error(400, "bad request")
            return
        if "[Response]\n" in prompt:
            self._answer(body, expected_rating(prompt.split("[Response]\n", 1)[1]), None)
            return
        outputs = dict(OUTPUT.findall(prompt))
        lengths = {key: len(outputs.get(key, "")) for key in ("m", "M")}
        if lengths["m"] == lengths["M"]:
            logprobs = {"m": -0.6931, "M": -0.6931}
        else:
            winner = max(lengths, key=lambda k: lengths[k])
            logprobs = {winner: 0.0, ("M" if winner == "m" else "m"): -40.0}
        token = max(logprobs, key=lambda k: logprobs[k])
        top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in logprobs.items()]
        self._answer(body, token, {"content": [
            {"token": token, "logprob": logprobs[token], "bytes": list(token.encode()),
             "top_logprobs": top}
        ]})  # fmt: skip

    def _answer(self, body: dict[str, object], content: str, logprobs: object) -> None:
        answer = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    "logprobs": logprobs,
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def fake_judge() -> Iterator[str]:
    """Serve the judge on a free port; yield its base URL (``http://127.0.0.1:<port>/v1``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
