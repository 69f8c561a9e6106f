"""The one redactor: every secret is replaced by :data:`REDACTED` before anything is written or printed.

What counts as a secret:

- a value the caller knows is secret (the API key read from ``endpoint.api_key_env``), wherever it occurs
  in a text, including a text cut off in the middle of it;
- the userinfo of a URL (``http://user:password@host`` -> ``http://REDACTED@host``: brackets are not
  allowed there, and a redacted URL must still parse);
- the value of a query parameter whose name looks secret (``api_key``, ``key``, ``token``, ``sig``, ...);
- the value of a header or mapping key whose name looks secret (``Authorization``, ``x-api-key``,
  ``*_token``, ``password``, ``cookie``, ...); a variable's *name* (``api_key_env``) is not a secret;
- bearer tokens and ``sk-...`` keys inside free text (a server echoing the request into its error).

    >>> redact_url("https://me:hunter2@api.example.com/v1?api_key=abc&region=eu")
    'https://REDACTED@api.example.com/v1?api_key=[REDACTED]&region=eu'
    >>> redact_text("401: key hunter2 in 'Bearer sk-abc123456789' for http://u:pw@h/v1", ["hunter2"])
    "401: key [REDACTED] in 'Bearer [REDACTED]' for http://REDACTED@h/v1"
    >>> redact({"headers": {"Authorization": "Bearer x", "X-Trace": "1"}, "api_key_env": "MY_KEY"})
    {'headers': {'Authorization': '[REDACTED]', 'X-Trace': '1'}, 'api_key_env': 'MY_KEY'}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["REDACTED", "is_secret_name", "redact", "redact_headers", "redact_text", "redact_url"]

REDACTED = "[REDACTED]"

# Names (headers, mapping keys, query parameters) whose values are secrets. Whole-name matches plus
# suffixes, so that ``api_key_env`` (a variable's name), ``output_tokens`` and ``tokenizer`` stay readable.
_SECRET_NAME = re.compile(
    r"^(key|api[-_]?key|apikey|x-api-key|api-token|authorization|proxy-authorization|password|passwd|pwd|"
    r"secret|client[-_]?secret|token|access[-_]?token|auth[-_]?token|refresh[-_]?token|id[-_]?token|"
    r"bearer|cookie|set-cookie|session|sessionid|credentials?|sig|signature|x-goog-api-key|"
    r"x-amz-security-token|x-amz-signature|ocp-apim-subscription-key)$"
    r"|[-_](secret|password|api[-_]?key|token|key|signature|credentials?)$",
    re.IGNORECASE,
)
# An authorization scheme keeps its name ("Bearer [REDACTED]": which credential was rejected is a clue).
_SCHEME_VALUE = re.compile(r"\b([Bb]earer)(\s+)(?!\[REDACTED\])[^\s'\",;]+|\b(Basic)(\s+)[A-Za-z0-9+/]{8,}=*")
_KEY_VALUE = re.compile(r"\bsk-[A-Za-z0-9_-]{8,}")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_MIN_TAIL = 3  # a text ending with the first k >= 3 characters of a secret was cut inside it


def is_secret_name(name: str) -> bool:
    """Whether a header, mapping key or query parameter of this name holds a secret."""
    return bool(_SECRET_NAME.search(name))


def redact_url(url: str) -> str:
    """``url`` without its userinfo and with secret-looking query values replaced (not a URL: unchanged)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED.strip('[]')}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        params = []
        for q in query.split("&"):
            name, sep, _ = q.partition("=")
            params.append(f"{name}={REDACTED}" if sep and is_secret_name(name) else q)
        query = "&".join(params)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with the known ``secrets``, bearer tokens, ``sk-`` keys and URL credentials replaced.

    Known secrets go first, and a text that ends inside one (a body cut at a length limit) loses that tail
    too, so trimming afterwards can never leave half a key behind.
    """
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, REDACTED)
        for k in range(min(len(secret) - 1, len(text)), _MIN_TAIL - 1, -1):
            if text.endswith(secret[:k]):
                text = text[:-k] + REDACTED
                break
    text = _SCHEME_VALUE.sub(_keep_scheme, text)
    text = _KEY_VALUE.sub(REDACTED, text)
    if "://" in text:
        text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    return text


def _keep_scheme(m: re.Match[str]) -> str:
    scheme, space = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return f"{scheme}{space}{REDACTED}"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers with the values of secret-looking names replaced."""
    return {k: REDACTED if is_secret_name(k) and v else v for k, v in headers.items()}


def redact(obj: Any, secrets: Iterable[str | None] = ()) -> Any:
    """A deep copy of ``obj`` (mappings, lists, strings) with every secret replaced (see the module)."""
    known = [s for s in secrets if s]
    return _redact(obj, known)


def _redact(obj: Any, secrets: list[str]) -> Any:
    if isinstance(obj, Mapping):
        return {
            k: REDACTED
            if isinstance(k, str) and is_secret_name(k) and obj[k] not in (None, "")
            else _redact(v, secrets)
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [_redact(v, secrets) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj, secrets)
    return obj
