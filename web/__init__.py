"""The staff page (`noticeflow web`): see web/app.py."""
