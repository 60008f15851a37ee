"""The OpenAI-compatible API: `/v1/chat/completions` and `/v1/models`, the hot path
(hand-written parsing and encoding, measured in bench/)."""
