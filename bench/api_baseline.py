"""The reference for bench/http-api.sh: the seed's stack (FastAPI on uvicorn) doing what Nebula's
REST API does for the two measured routes, against the same PostgreSQL and the same token:

  GET /healthz        -> {"status": "ok"}
  GET /api/datasets   -> verify the HS256 bearer token (PyJWT: signature, algorithm, issuer, expiry),
                         then the same two queries as Nebula (page of the caller's datasets, total)
                         through an asyncpg pool, answered as JSON.

Environment: NEBULA_BENCH_DATABASE_URL, NEBULA_BENCH_JWT_SECRET, NEBULA_BENCH_DB_CONNECTIONS (per worker).
"""
import os
from contextlib import asynccontextmanager

import asyncpg
import jwt
from fastapi import FastAPI, Header, HTTPException

SECRET = os.environ["NEBULA_BENCH_JWT_SECRET"].encode()
DATABASE_URL = os.environ["NEBULA_BENCH_DATABASE_URL"]
CONNECTIONS = int(os.environ.get("NEBULA_BENCH_DB_CONNECTIONS", "4"))
state = {}

COLUMNS = """id, name, owner, state, kind, source, source_bytes, stored_bytes, rows, columns, error, sha256,
    (extract(epoch FROM created_at) * 1000)::bigint AS created_unix_ms,
    (extract(epoch FROM updated_at) * 1000)::bigint AS updated_unix_ms"""


@asynccontextmanager
async def lifespan(_app):
    state["pool"] = await asyncpg.create_pool(DATABASE_URL, min_size=CONNECTIONS, max_size=CONNECTIONS)
    yield
    await state["pool"].close()


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}


@app.get("/api/datasets")
async def datasets(authorization: str = Header(None), limit: int = 50, offset: int = 0):
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(status_code=401, detail="sign in first")
    try:
        claims = jwt.decode(authorization[7:], SECRET, algorithms=["HS256"], issuer="nebula")
    except jwt.PyJWTError:
        raise HTTPException(status_code=401, detail="invalid token")
    owner = None if claims.get("role") == "admin" else claims["sub"]
    async with state["pool"].acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {COLUMNS} FROM datasets WHERE ($3::text IS NULL OR owner = $3) "
            "ORDER BY created_at DESC, id LIMIT $1 OFFSET $2", limit, offset, owner)
        total = await conn.fetchval("SELECT count(*) FROM datasets WHERE ($1::text IS NULL OR owner = $1)", owner)
    return {"datasets": [dict(r) for r in rows], "total": total, "limit": limit, "offset": offset}
