// The seed tutorials' Express gateway, built as they document it: JWT verification,
// a Redis INCR/EXPIRE fixed-window limit per consumer, and http-proxy-middleware.
// Used only by scripts/bench.sh (scenario express_full) as a comparison point.
const express = require('express');
const Redis = require('ioredis');
const jwt = require('jsonwebtoken');
const { createProxyMiddleware } = require('http-proxy-middleware');

const port = Number(process.env.PORT || 18060);
const upstream = process.env.UPSTREAM || 'http://127.0.0.1:18090';
const secret = process.env.JWT_SECRET || 'secret';
const redis = new Redis(process.env.REDIS_URL || 'redis://127.0.0.1:6379');
const LIMIT = Number(process.env.LIMIT || 1000000000);
const WINDOW = 60;

const app = express();

app.use((req, res, next) => {
  const header = req.headers.authorization || '';
  const token = header.startsWith('Bearer ') ? header.slice(7) : null;
  if (!token) return res.status(401).json({ error: 'missing_credentials' });
  try {
    req.user = jwt.verify(token, secret);
    next();
  } catch (e) {
    return res.status(401).json({ error: 'invalid_token' });
  }
});

app.use(async (req, res, next) => {
  const key = `ratelimit:${req.user.sub}`;
  try {
    const current = await redis.incr(key);
    if (current === 1) await redis.expire(key, WINDOW);
    if (current > LIMIT) return res.status(429).json({ error: 'rate_limited' });
    next();
  } catch (e) {
    next();
  }
});

app.use('/', createProxyMiddleware({ target: upstream, changeOrigin: true }));

app.listen(port, '127.0.0.1', () => console.log(`express gateway on ${port}`));
