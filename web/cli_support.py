"""What `noticeflow staff add NAME` does: read the password (asked twice on a terminal, the first line
of standard input otherwise, so a script can pipe it in) and create the account."""
from __future__ import annotations

import getpass
import sys
from typing import TextIO

from models.db import session_scope
from models.staff import StaffError, add_staff


class PasswordEntryError(ValueError):
    """The password could not be read as given; the message is Chinese and says what to do."""


def read_password(stdin: TextIO | None = None) -> str:
    stdin = stdin or sys.stdin
    if stdin.isatty():
        first = getpass.getpass("请输入密码：")
        if getpass.getpass("请再次输入密码：") != first:
            raise PasswordEntryError("两次输入的密码不一致，账号未创建，请重新执行")
        return first
    line = stdin.readline()
    password = line[:-1] if line.endswith("\n") else line
    return password.removesuffix("\r")


def add_staff_interactive(name: str, *, replace: bool = False, stdin: TextIO | None = None) -> str:
    """Create the account (or, with `replace`, set a new password); returns a Chinese confirmation.
    Raises PasswordEntryError or models.staff.StaffError (both with a Chinese message)."""
    password = read_password(stdin)
    with session_scope() as session:
        account = add_staff(session, name, password, replace=replace)
        created = account.name
    return f"已{'重设' if replace else '创建'}工作人员账号：{created}。请在浏览器中打开工作台登录。"


__all__ = ["PasswordEntryError", "StaffError", "add_staff_interactive", "read_password"]
