"""The chaos suite (`python -m bench.chaos`, `make chaos`): can anything lose a page?

Each scenario starts its own redis-server on a free loopback port, the OpenAI simulator as its
own process and real pool processes (`python -m pool run`), then does its worst to them: kill -9
storms, Redis SIGKILLs with and without persistence, Railway-style redeploys, and a fuzz of
malformed payloads. It prints one table and writes bench/results/chaos.md and chaos.json.
"""
