"""The pages: campaigns list, a campaign's board, a unit's page, the messages waiting for a unit.
Plain GETs, rendered on the server; sorting and filtering are query parameters."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Request

from models.clock import CHINA_TZ
from models.db import session_scope
from models.tables import Campaign
from web.auth import require_staff
from web.board import Filters, campaign_board, campaign_units, campaigns_overview, review_items
from web.downloads import CAMPAIGN_FILES, campaign_file_path
from web.templating import render
from web.unit_view import unit_page

router = APIRouter()


def _not_found(what: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"找不到{what}，请从活动列表重新进入。")


@router.get("/")
def campaigns(request: Request, staff: str = Depends(require_staff)):
    with session_scope() as session:
        lines = campaigns_overview(session)
    return render(request, "campaigns.html.j2", lines=lines)


@router.get("/campaigns/{campaign_id}")
def board(request: Request, campaign_id: str, staff: str = Depends(require_staff)):
    filters = Filters.from_query(request.query_params)
    with session_scope() as session:
        view = campaign_board(session, campaign_id, filters)
        if view is None:
            raise _not_found(f"活动 {campaign_id}")
        files = _campaign_files(request, view.campaign)
    return render(request, "board.html.j2", board=view, files=files)


@router.get("/campaigns/{campaign_id}/units/{unit_code}")
def unit(request: Request, campaign_id: str, unit_code: str, staff: str = Depends(require_staff)):
    with session_scope() as session:
        page = unit_page(session, campaign_id, unit_code)
    if page is None:
        raise _not_found(f"活动 {campaign_id} 中的单位 {unit_code}")
    return render(request, "unit.html.j2", page=page)


@router.get("/campaigns/{campaign_id}/review")
def review(request: Request, campaign_id: str, staff: str = Depends(require_staff)):
    with session_scope() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise _not_found(f"活动 {campaign_id}")
        items = review_items(session, campaign_id)
        units = campaign_units(session, campaign_id)
    return render(request, "review.html.j2", campaign=campaign, items=items, units=units)


def _campaign_files(request: Request, campaign) -> list[dict]:
    output_dir = request.app.state.settings.output_dir
    files = []
    for kind, info in CAMPAIGN_FILES.items():
        path = campaign_file_path(output_dir, campaign, kind)
        files.append({"kind": kind, "label": info.label, "available": path is not None,
                      "made_at": datetime.fromtimestamp(path.stat().st_mtime, CHINA_TZ) if path else None})
    return files
