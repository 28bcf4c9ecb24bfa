"""The Chinese texts of the messages (what the student reads), kept in one place."""

from __future__ import annotations

# `phrase` values: at most 5 Chinese characters.
RESULT = {
    "order_paid": "支付成功",
    "match_failed": "比对未通过",
    "review_approved": "审核通过",
    "review_rejected": "审核未通过",
}

# The `reason`/`tip` source when the event carries no reason of its own.
TIP = {
    "order_paid": "请进入小程序拍摄或上传照片",
    "match_failed": "请进入小程序查看并重新提交照片",
    "review_approved": "照片将上传学信网并打印邮寄",
    "review_rejected": "请进入小程序查看原因并重新提交",
}

NO_VALUE = "无"
