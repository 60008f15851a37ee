"""The gateway's HTTP server, one sub-package per API.

- `openai/`: `/v1/chat/completions` and `/v1/models`, the hot path.
- `agents/`: the config's agents (HTTP, server-sent events, WebSocket), their threads
  and runs.
- `control/`: health, status, isolation, config, metrics and events under `/api/v1`.

What they share sits here: the app (`app`), its state (`gateway`), keys and limits
(`auth`, `limits`), errors in OpenAI's shape (`errors`), stream writes (`coalesce`),
JSON bodies and the OpenAPI document's pieces (`common`, assembled by `openapi`).
"""
