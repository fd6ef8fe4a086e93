"""The demo's broker: kombu's filesystem transport, with each message published atomically.

kombu's filesystem transport creates a message file under its final name and then writes it. A
consumer that lists the folder in between moves the empty file away, fails to decode it and
stops the worker (and the message is lost): seen in `make demo` once the folder was polled every
20 ms. Here a message is written under a name consumers skip (they take only `<...>.<queue>.msg`)
and renamed into place, so a consumer only ever sees whole messages. Used as `fsatomic://`
(the alias is registered when this module is imported, by the settings)."""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

ALIAS = "fsatomic"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        """Put a message onto `queue`: written aside, then renamed into the folder at once."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.partial")
        try:
            with open(partial, "wb") as out:
                out.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
    driver_type = "filesystem"
    driver_name = "filesystem"


TRANSPORT_ALIASES.setdefault(ALIAS, f"{__name__}:Transport")
