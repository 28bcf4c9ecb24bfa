"""What a student reads when a collection code is refused: one place for the Chinese text."""

from __future__ import annotations

REJECTION_MESSAGES: dict[str, str] = {
    "no_code_found": "未识别到二维码，请上传学信网“图像采集码”原图（不要截图），或直接扫描采集码。",
    "multiple_codes": "图片中有多个二维码，请只保留本人的学信网图像采集码后重新上传。",
    "not_chsi_code": "这不是学信网图像采集码，请在学信档案中“查看图像采集码”并保存后上传。",
    "decryption_failed": "采集码无法解析，可能已过期或图片不完整，请重新下载图像采集码后再试。",
    "fields_mismatch": "填写的信息与采集码不一致，请核对姓名、学号、证件号后4位（括号也要填写）。",
    "school_mismatch": "采集码上的学校与本次采集学校不一致（可能因学籍异动），"
    "请到学校学籍部门更新学信网信息后重新下载图像采集码。",
    "student_number_invalid": "学信网上的学号为空或异常，"
    "请到学校学籍部门修改为正确学号后，重新下载图像采集码。",
    "not_an_image": "上传的文件不是图片，请上传 JPG 或 PNG 格式的采集码图片。",
    "empty_file": "上传的文件是空的，请重新选择采集码图片。",
    "truncated_image": "图片不完整（可能未下载完），请重新保存采集码图片后上传。",
    "image_too_large": "图片尺寸过大，请上传原始的采集码图片。",
    "text_too_long": "扫描结果过长，不是学信网图像采集码，请重新扫描。",
    "image_missing": "采集码图片已失效，请重新上传。",
}

FIELD_LABELS: dict[str, str] = {"name": "姓名", "student_number": "学号", "id_last4": "证件号后4位"}


def rejection_message(reason: str, mismatched_fields: list[str] | None = None) -> str:
    message = REJECTION_MESSAGES[reason]
    if reason == "fields_mismatch" and mismatched_fields:
        labels = "、".join(FIELD_LABELS.get(f, f) for f in mismatched_fields)
        message = f"{labels}与采集码不一致，请核对后重新填写（证件号后4位如有括号也要填写）。"
    return message
