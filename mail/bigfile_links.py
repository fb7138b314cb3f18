"""QQ Mail and NetEase (163/126) "超大附件": files sent as expiring download links in the body.

There is no file to store; staff must download it before the link expires, so the collector flags
the message for review with each link and its expiry. The markup recognised is what the webmails
write: QQ's `bigatt` block (title "文件名 / 文件大小 / 到期时间") or the plain-text line
"名称 (12.3M, 2023年10月20日 10:00 到期)进入下载页面：URL"; NetEase's anchors with `expiretime`
(milliseconds) and "(3.61M, 2022年11月25日 13:35 到期)".
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

from models.clock import CHINA_TZ

_URL = re.compile(r"https?://[^\s<>\"'（）()]+", re.IGNORECASE)
_DATE_TIME = re.compile(
    r"(\d{4})\s*[年/-]\s*(\d{1,2})\s*[月/-]\s*(\d{1,2})\s*日?(?:\s*(\d{1,2})\s*[:：]\s*(\d{2}))?"
)
_EXPIRY = re.compile(
    r"(?:到期时间|过期时间|有效期至|有效期到|有效时间到)\s*[:：]?\s*(?P<before>" + _DATE_TIME.pattern + r"|无限期|永久有效|永久)"
    r"|(?P<after>" + _DATE_TIME.pattern + r")\s*(?:到期|过期|失效)"
    r"|(?P<forever>无限期|永久有效)"
    r"|(?P<relative>\d+\s*天后(?:到期|过期|失效))"
)
_NAME_BEFORE_SIZE = re.compile(r"([^\n()（）]+?)\s*[(（]\s*[\d.]+\s*[KMGT]B?\s*[,，]", re.IGNORECASE)
_NEARBY = 300  # characters of text around a link searched for its expiry


@dataclass
class BigFileLink:
    url: str
    provider: str  # "qq" | "163" | "126" | "yeah"
    expires: str | None  # ISO local (Beijing) time, e.g. "2023-10-20T10:00"; None if unlimited or unknown
    name: str = ""
    expiry_text: str = ""  # the words as the mail wrote them


def link_provider(url: str) -> tuple[str, str] | None:
    """(provider, file key) when `url` is a QQ/NetEase big-attachment link, else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    path = parts.path.lower()
    query = parse_qs(parts.query)
    qq_mail_host = host in ("mail.qq.com", "exmail.qq.com", "ftn.qq.com") or host.endswith(".mail.qq.com")
    if qq_mail_host and ("ftn" in path or "ftn" in parts.query.lower()):
        key = (query.get("k") or query.get("key") or [url])[0]
        return "qq", key
    netease = {"163.com": "163", "126.com": "126", "yeah.net": "yeah"}
    for domain, label in netease.items():
        if host == domain or host.endswith("." + domain):
            if host.startswith("fs.") or "large-attachment" in path or "huge-attachment" in parts.query.lower():
                return label, (query.get("file") or [url])[0]
    return None


class _LinkText(HTMLParser):
    """Flattens HTML to text while remembering where each link and each title attribute sits."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.anchors: list[dict] = []
        self._open: list[dict] = []
        self.position = 0

    def _emit(self, piece: str) -> None:
        self.text.append(piece)
        self.position += len(piece)

    def handle_starttag(self, tag, attrs):
        attributes = {key.lower(): value or "" for key, value in attrs}
        if attributes.get("title"):
            # QQ writes the file name, size and expiry into the title of the block around the link.
            self._emit("\n" + attributes["title"] + "\n")
        if tag in ("div", "p", "br", "tr", "li"):
            self._emit("\n")
        if tag == "a" and attributes.get("href"):
            anchor = {"href": attributes["href"].strip(), "attrs": attributes, "start": self.position, "text": ""}
            self.anchors.append(anchor)
            self._open.append(anchor)

    def handle_endtag(self, tag):
        if tag == "a" and self._open:
            anchor = self._open.pop()
            anchor["end"] = self.position
        if tag in ("div", "p", "tr", "li"):
            self._emit("\n")

    def handle_data(self, data):
        for anchor in self._open:
            anchor["text"] += data
        self._emit(data)


def _iso(match: re.Match) -> str:
    year, month, day, hour, minute = (match.group(i) for i in range(1, 6))
    if hour is not None:
        return f"{int(year):04d}-{int(month):02d}-{int(day):02d}T{int(hour):02d}:{minute}"
    return f"{int(year):04d}-{int(month):02d}-{int(day):02d}"


def _expiry_in(window: str) -> tuple[str | None, str] | None:
    found = _EXPIRY.search(window)
    if not found:
        return None
    words = found.group(0).strip()
    date = _DATE_TIME.search(words)
    return (_iso(date) if date else None), words


def _expiry_from_millis(value: str) -> str | None:
    if not value.isdigit():
        return None
    moment = datetime.fromtimestamp(int(value) / 1000, CHINA_TZ)
    return moment.strftime("%Y-%m-%dT%H:%M")


def _merge(found: dict, url: str, provider: str, key: str, expiry: tuple[str | None, str] | None, name: str,
           *, authoritative: bool = False) -> None:
    entry = found.get((provider, key))
    if entry is None:
        entry = found[(provider, key)] = BigFileLink(url, provider, None)
    if expiry and (authoritative or not (entry.expires or entry.expiry_text)):
        entry.expires = expiry[0]
        entry.expiry_text = expiry[1] or entry.expiry_text
    if name and not entry.name:
        entry.name = name


def _nearest_expiry(flat: str, start: int, end: int, *, before_first: bool) -> tuple[str | None, str] | None:
    before = list(_EXPIRY.finditer(flat[max(0, start - _NEARBY):start]))
    after = _EXPIRY.search(flat[end:end + _NEARBY])
    nearest_before = _expiry_in(before[-1].group(0)) if before else None
    nearest_after = _expiry_in(after.group(0)) if after else None
    if before_first:
        return nearest_before or nearest_after
    return nearest_after or nearest_before


def _clean_name(text: str) -> str:
    text = re.sub(r"\s+", " ", text or "").strip()
    if not text or text in ("下载", "在线预览", "预览", "下载页面", "进入下载页面", "download"):
        return ""
    return text


def find_bigfile_links(text: str, html: str) -> list["BigFileLink"]:
    """Every QQ/NetEase big-attachment link in the body, once each, with its expiry if written."""
    found: dict[tuple[str, str], BigFileLink] = {}
    if html:
        parser = _LinkText()
        try:
            parser.feed(html)
            parser.close()
        except Exception:  # html.parser is lenient; garbage must not hide the plain-text links
            parser = None
        if parser is not None:
            flat = "".join(parser.text)
            for anchor in parser.anchors:
                recognised = link_provider(anchor["href"])
                if recognised is None:
                    continue
                provider, key = recognised
                # QQ writes the expiry before its links (the block's title), NetEase right after.
                expiry = _nearest_expiry(flat, anchor["start"], anchor.get("end", anchor["start"]),
                                         before_first=provider == "qq")
                millis = _expiry_from_millis(anchor["attrs"].get("expiretime", ""))
                if millis:
                    expiry = (millis, expiry[1] if expiry else "")
                name = _clean_name(anchor["attrs"].get("filename", "")) or _clean_name(anchor["text"])
                _merge(found, anchor["href"], provider, key, expiry, name, authoritative=bool(millis))
    if text:
        for match in _URL.finditer(text):
            url = match.group(0).rstrip(".,;，。；")
            recognised = link_provider(url)
            if recognised is None:
                continue
            provider, key = recognised
            line_start = text.rfind("\n", 0, match.start()) + 1
            before = text[line_start:match.start()]
            expiry = _expiry_in(before) or _expiry_in(text[match.end():match.end() + _NEARBY])
            named = _NAME_BEFORE_SIZE.search(before)
            _merge(found, url, provider, key, expiry, named.group(1).strip() if named else "")
    return list(found.values())


def review_note_zh(links: list[BigFileLink]) -> str:
    """What staff read on the review item: each file, its link and when it expires."""
    lines = ["邮件中有超大附件（下载链接，不是附件），请在到期前下载并人工归档："]
    for link in links:
        when = link.expires.replace("T", " ") + " 到期" if link.expires else (link.expiry_text or "到期时间未知")
        lines.append(f"- {link.name or '（未写文件名）'}：{link.url}（{when}）")
    return "\n".join(lines)
