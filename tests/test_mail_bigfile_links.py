"""超大附件 links: what counts as one, where its expiry is read, and what staff are told."""
from __future__ import annotations

from mail.bigfile_links import BigFileLink, find_bigfile_links, link_provider, review_note_zh

QQ_TEXT = ("从QQ邮箱发来的超大附件\n\n"
           "epoch70.pth (128.03M, 2020年11月27日 21:59 到期)进入下载页面：http://mail.qq.com/cgi-bin/ftnExs_download?"
           "t=exs_ftn_download&k=7d363834fce09c93&code=7684decd\n"
           "总结.docx (1.2M, 无限期)进入下载页面：https://wx.mail.qq.com/ftn/download?func=3&k=aa11&key=aa11\n")


def test_qq_plain_text_lines():
    assert find_bigfile_links(QQ_TEXT, "") == [
        BigFileLink("http://mail.qq.com/cgi-bin/ftnExs_download?t=exs_ftn_download&k=7d363834fce09c93&code=7684decd",
                    "qq", "2020-11-27T21:59", "epoch70.pth", "2020年11月27日 21:59 到期"),
        BigFileLink("https://wx.mail.qq.com/ftn/download?func=3&k=aa11&key=aa11", "qq", None, "总结.docx", "无限期"),
    ]


def test_old_163_fs_links_and_the_preview_link_are_one_file():
    html = ('<a href="http://fs.163.com/fs/display/?p=X-NETEASE-HUGE-ATTACHMENT&amp;file=Xt9C&amp;title=x">'
            '<img src="cid:ico"></a><a href="http://fs.163.com/fs/display/?p=X-NETEASE-HUGE-ATTACHMENT&amp;file=Xt9C'
            '&amp;title=x">江森产品.rar</a><span> (60.57M, 2011年12月27日 19:39 到期)</span>'
            '<a href="http://fs.163.com/fs/preview/?file=Xt9C&amp;title=x">在线预览</a>')
    [link] = find_bigfile_links("", html)
    assert (link.provider, link.name, link.expires) == ("163", "江森产品.rar", "2011-12-27T19:39")


def test_ordinary_links_are_not_big_files():
    html = ('<a href="https://mail.qq.com/">QQ邮箱</a> <a href="https://mail.163.com/">163</a>'
            '<a href="https://www.qq.com/ftn.html">news</a>')
    assert find_bigfile_links("https://mail.163.com/js6/main.jsp 见 https://example.com", html) == []
    assert link_provider("https://exmail.qq.com/cgi-bin/ftnExs_download?k=1") == ("qq", "1")
    assert link_provider("https://mail.126.com/large-attachment-download/index.html?file=F1") == ("126", "F1")


def test_review_note_names_every_file_and_expiry():
    links = find_bigfile_links(QQ_TEXT, "")
    assert review_note_zh(links) == (
        "邮件中有超大附件（下载链接，不是附件），请在到期前下载并人工归档：\n"
        f"- epoch70.pth：{links[0].url}（2020-11-27 21:59 到期）\n"
        f"- 总结.docx：{links[1].url}（无限期）")
