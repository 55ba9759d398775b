"""Typed application keys: what the handlers find on ``request.app``."""

import redis.asyncio as aioredis
from aiohttp import web

from monitor.api.feed import Feed
from monitor.api.hub import Hub
from monitor.api.metrics import ApiMetrics
from monitor.api.store import EpisodeStore
from monitor.api.supervise import Health
from monitor.api.verdicts import Waiters
from schemas.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", ApiMetrics)
HUB = web.AppKey("hub", Hub)
WAITERS = web.AppKey("waiters", Waiters)
REDIS = web.AppKey("redis", aioredis.Redis)
STORE = web.AppKey("store", EpisodeStore)
FEED = web.AppKey("feed", Feed)
HEALTH = web.AppKey("health", Health)
