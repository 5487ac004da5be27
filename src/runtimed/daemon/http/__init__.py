"""The daemon's HTTP server (issue 24): one aiohttp server on 127.0.0.1 (by default) for
the REST API, websocket clients and browsers, behind a token, Host and Origin checks.

- ``listen``: where it binds (``HttpListen``, ``--http-listen``, setting ``http.listen``);
- ``tokens``: the token file, the login cookie and the one-time login codes;
- ``security``: the middlewares (errors, limits, Host, Origin, auth);
- ``http_server``: ``HttpServer``, which routes register with before it starts;
- ``http_errors``: ``json_error``, the one JSON error shape every handler answers with.
"""
