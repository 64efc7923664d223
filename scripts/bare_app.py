"""The stack's ceiling for benchmarks: a Flask app that only returns the 43-byte GIF.

Served by gunicorn with the product's own settings (``deploy/gunicorn.conf.py``), so the ratio
product / bare measures what the ad server adds on top of Flask + gunicorn, not the machine.
"""

from flask import Flask, Response

GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/px.gif")
    def pixel() -> Response:
        response = Response(GIF, mimetype="image/gif")
        response.headers["Cache-Control"] = "no-store, max-age=0"
        return response

    return app
