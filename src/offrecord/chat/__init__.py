"""``offrecord chat``: private conversations over real chat networks, in a
terminal UI or driven by a script (see ``docs/chat.md``).

Entry points: :func:`~offrecord.chat.app.run_chat` (a transport factory and
the parsed options of :func:`~offrecord.chat.app.add_chat_options`) and
:class:`~offrecord.chat.client.ChatClient` (the client itself, for programs).
"""

from offrecord.chat.app import add_chat_options, run_chat, run_chat_async
from offrecord.chat.client import ChatClient
from offrecord.chat.render import ChatState, Line

__all__ = ["ChatClient", "ChatState", "Line", "add_chat_options", "run_chat", "run_chat_async"]
