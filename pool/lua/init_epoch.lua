-- KEYS: epoch. ARGV: a new token. Sets the marker if there is none; returns the marker.
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
