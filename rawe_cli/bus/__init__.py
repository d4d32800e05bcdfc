"""The Redis adapter: streams, codec, keys, durable state, lease and fence, the consumer.

The only package that talks to Redis; the decision archive (JSON lines) lives here too.
"""
