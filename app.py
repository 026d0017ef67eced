"""Start the AIGC Digital-Twin Studio: ``python app.py [--port 7860] [--language zh] ...``.

Flags (and AIGC_* environment variables) are listed by ``python app.py --help``.
"""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from aigc_ui.app import build_app, configure_logging, launch_kwargs, queue_kwargs  # noqa: E402
from pipelines.core.settings import parse_args  # noqa: E402


def main(argv=None):
    configure_logging()
    config = parse_args(argv)
    demo = build_app(config)
    demo.queue(**queue_kwargs(config)).launch(**launch_kwargs(config))


if __name__ == "__main__":
    main()
