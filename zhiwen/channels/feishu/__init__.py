"""The Feishu / Lark bot: event callback checks, an async Open API client, answer cards, the bot itself.

``zhiwen.server.routes.feishu`` mounts it at ``POST /feishu/events`` on ``zhiwen serve`` when the
``ZHIWEN_FEISHU_*`` settings are set.
"""
