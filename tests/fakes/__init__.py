"""Local fakes of outside services, speaking their documented protocols over httpx ``MockTransport``.

- ``clock.FakeClock``: a settable tz-aware UTC clock, shared by a fake and the client under test.
- ``wechat.FakeWeChat``: the official-account API (stable_token, qrcode/create, template/send, user/info).
- ``wechatpay.FakeWeChatPay``: WeChat Pay API v3 profit sharing, with request and response signatures.

Each fake records every request it received (``calls``), so a test can assert that nothing was sent.
"""
