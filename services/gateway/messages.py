"""Every message the gateway shows a student, in one place (Chinese), keyed by a stable error code."""

from __future__ import annotations

ERROR_MESSAGES: dict[str, str] = {
    "invalid_request": "请求参数不正确，请检查后重试。",
    "invalid_json": "请求内容不是有效的 JSON。",
    "agreement_required": "请先阅读并同意《用户服务协议》和《隐私政策》。",
    "code_source_required": "请扫描图像采集码，或上传保存的采集码图片（二选一）。",
    "empty_file": "上传的文件是空的，请重新选择采集码图片。",
    "unsupported_media_type": "请上传 JPG 或 PNG 格式的图片。",
    "not_an_image": "上传的文件不是图片，请上传 JPG 或 PNG 格式的采集码图片。",
    "image_too_large": "图片尺寸过大，请上传原始的采集码图片。",
    "payload_too_large": "上传的文件太大，请上传不超过 10MB 的图片。",
    "text_too_long": "扫描结果过长，不是学信网图像采集码，请重新扫描。",
    "not_found": "未找到对应的记录。",
    "method_not_allowed": "不支持的请求方式。",
    "application_locked": "当前采集进度不能重新读取采集码。",
    "idempotency_conflict": "重复提交的请求与首次提交的内容不一致。",
    "service_unavailable": "服务繁忙，请稍后再试。",
    "internal_error": "系统繁忙，请稍后再试；如多次出现请联系客服。",
}
