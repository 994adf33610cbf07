"""The explorer page and the script it loads (not part of the API's schema); its static files are mounted at
/static by :func:`ratecast.serve.app.create_app`."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index():
    return FileResponse(STATIC / "index.html")


@router.get("/vendor/plotly.min.js")
async def plotly_js():
    import plotly

    return FileResponse(Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
                        media_type="text/javascript")
