"""fewgen review: a run folder as a FiftyOne dataset, and the FiftyOne App to look at it."""

import os

# FiftyOne reads these when it is first imported, which happens only inside this package.
# fewgen runs offline, so FiftyOne's usage tracking stays off unless a user turns it on; and the
# mongod the install pins (6.0.5, see ../shared/ENVIRONMENT.md) is supported, so FiftyOne's
# "oldest supported version" notice on every command is noise.
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
