"""WeChat Pay API v3: a signed client (``client``), its signatures (``signing``), errors (``errors``)
and profit sharing (``profit_sharing``, with its request rules in ``rules``). See docs/wechat-api.md."""
