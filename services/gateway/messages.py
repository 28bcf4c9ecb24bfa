"""Every message the gateway shows a student, in one place (Chinese), keyed by a stable error code."""

from __future__ import annotations

ERROR_MESSAGES: dict[str, str] = {
    "invalid_request": "请求参数不正确，请检查后重试。",
    "invalid_json": "请求内容不是有效的 JSON。",
    "unauthenticated": "登录已过期，请重新进入小程序。",
    "forbidden": "无权访问。",
    "invalid_login_code": "登录凭证无效或已使用，请重新进入小程序。",
    "invalid_phone_code": "手机号授权无效或已过期，请重新授权。",
    "wechat_unavailable": "微信服务暂时不可用，请稍后再试。",
    "rate_limited": "操作太频繁，请稍后再试。",
    "agreement_required": "请先阅读并同意《用户服务协议》和《隐私政策》。",
    "code_source_required": "请扫描图像采集码，或上传保存的采集码图片（二选一）。",
    "empty_file": "上传的文件是空的，请重新选择图片。",
    "unsupported_media_type": "请求格式不正确，请上传 JPG 或 PNG 格式的图片。",
    "not_an_image": "上传的文件不是图片，请上传 JPG 或 PNG 格式的图片。",
    "image_too_large": "图片尺寸过大，请上传原始图片。",
    "payload_too_large": "上传的文件太大，请上传不超过 10MB 的图片。",
    "text_too_long": "扫描结果过长，不是学信网图像采集码，请重新扫描。",
    "not_found": "未找到对应的记录。",
    "invite_invalid": "邀请链接无效、已使用或已过期，请联系管理员重新邀请。",
    "operator_exists": "该邮箱已有账号。",
    "method_not_allowed": "不支持的请求方式。",
    "no_application": "请先完成学信网采集码采集。",
    "application_locked": "当前采集进度不能重新读取采集码。",
    "illegal_transition": "当前进度不能进行此操作，请刷新后查看下一步。",
    "idempotency_conflict": "重复提交的请求与首次提交的内容不一致。",
    "idempotency_key_reused": "重复提交的请求与首次提交的内容不一致，请刷新后重新操作。",
    "scan_in_flight": "采集码正在识别中，请等待识别结果后再解除绑定。",
    "no_owner": "该申请当前没有绑定的微信账号。",
    "not_claimable": "该申请已在其他批次中或已不是审核通过状态。",
    "invalid_option": "请选择页面上提供的选项。",
    "album_photo_invalid": "本地照片要求：JPG 格式，宽 480~1350、高 640~1800 像素，大小 50K~1M。",
    "quota_exhausted": "照片制作次数已用完（24小时内限定次数），请在冷静期结束后再制作。",
    "photo_not_ready": "请选择一张已完成标准化的照片提交。",
    "admission_photo_required": "请先确认录取照片是否为本人。",
    "admission_photo_missing": "学校尚未提供您的录取照片，请联系客服。",
    "resubmissions_exhausted": "免费重拍提交次数已用完，请联系客服。",
    "order_failed": "下单失败，请稍后再试。",
    # Field rules (services/gateway/domain/field_rules.py).
    "capture_source_not_accepted": "学校要求使用手机摄像头现场拍摄，不能上传相册照片。",
    "policy_outdated": "《用户服务协议》或《隐私政策》已更新，请重新阅读并同意。",
    "busy": "请求过于集中，请稍后重试。",
    "service_unavailable": "服务繁忙，请稍后再试。",
    "internal_error": "系统繁忙，请稍后再试；如多次出现请联系客服。",
    # Operator console (/console): operators read Chinese or English, so both.
    "console_unauthenticated": "请先登录管理后台。(Sign in to the console.)",
    "invalid_credentials": "邮箱或密码不正确。(Wrong email or password.)",
    "csrf_failed": "页面已过期，请刷新后重试。(Missing or wrong CSRF token: reload the page.)",
    "review_lease_held": "该案例正由其他审核员处理。(Another reviewer holds this case.)",
    "reason_required": "请选择不通过原因。(Pick a rejection reason from the list.)",
    "no_paid_order": "该申请没有可退款的订单。(No paid order to refund.)",
    "refund_failed": "退款申请失败，请稍后重试。(WeChat Pay refused the refund; try again later.)",
    "nothing_to_refund": "该订单已全部退款或退款处理中。(Nothing of this order is left to refund.)",
    "refund_amount_invalid": "退款金额超出可退金额。(The amount is more than what is left to refund.)",
    "anomaly_not_refundable": "该异常不能直接退款，请核查后处理。(This anomaly cannot be refunded from here: investigate it.)",
    "import_too_large": "导入文件过大。(The import file is too large.)",
    "roster_invalid": "名单文件无法读取，请检查格式。(The roster file cannot be read.)",
    "unsafe_archive": "照片压缩包包含不安全的文件路径。(The photo archive has unsafe paths.)",
    "unknown_consumer": "没有这个队列。(No such consumer queue.)",
    "dead_letter_not_found": "死信消息不存在或已被处理。(The dead message is gone or was handled.)",
    "dead_letter_unroutable": "没有队列接收这类消息，无法重新投递。(No queue takes this type: it stays parked.)",
    "photo_not_rejected": "该照片未被质量检查拒绝。(The photo was not rejected by the quality check.)",
    "photo_not_placeable": (
        "该照片无法按标准裁剪（未找到人脸或人像不完整），不能放行，请让学生重拍。"
        "(The photo could not be placed to the standard: it cannot be overridden; ask for a new one.)"
    ),
    "nothing_to_deliver": "没有待交付的已审核照片。(No approved application is waiting for a batch.)",
    "batch_open": "该批次正在生成，请稍后刷新。(The batch is still being made; reload shortly.)",
    "delivery_photo_invalid": "批次中有照片不符合学信网要求或已删除。(A photo of the batch is missing or not CHSI-compliant.)",
    "delivery_not_printed": "请先标记已冲印再标记已邮寄。(Mark the batch printed before mailed.)",
    # Privacy (services/gateway/retention.py, erasure.py).
    "photo_purged": "照片已按保存期限删除。(The photo was deleted after the retention period.)",
    "application_in_flight": "该申请正在处理中，请稍后再删除。(A worker is still processing it: retry shortly.)",
}

# Money going back, on the student's status page (services/gateway/api/orders.py `refund_views`):
# what is refunded, then how far the refund got.
REFUND_KIND_MESSAGES: dict[str, str] = {
    "stale_payment": "您为已失效的订单重复支付的{yuan}元将自动原路退回",
    "operator": "您支付的{yuan}元已申请退款",
    "external": "您支付的{yuan}元已申请退款",
}
REFUND_STATUS_MESSAGES: dict[str, str] = {
    "requested": "，退款正在提交。",
    "processing": "，微信支付处理中，一般1~3个工作日到账。",
    "success": "，已退回原支付账户。",
    "abnormal": "，退款遇到问题，客服将尽快联系您处理。",
    "closed": "，退款未成功，客服将尽快联系您处理。",
}

# Why a reviewer rejects a photo (审核未通过): the student reads the label (seed step 12).
REVIEW_REASONS: dict[str, str] = {
    "background": "背景不是均匀的浅蓝色或有阴影",
    "head_position": "头部位置或大小不符合要求",
    "not_the_student": "照片与录取照片不是同一人",
    "headwear_or_glasses": "佩戴帽子、有色或反光眼镜、首饰",
    "hair_covers_face": "头发遮挡眉毛、眼睛或耳朵",
    "lighting": "光线不均匀、过曝或有阴阳脸",
    "expression": "表情或姿态不自然（未正视、闭眼、张嘴）",
    "retouched": "照片经过美颜、修饰或翻拍",
    "clothing": "服装颜色与背景相近",
    "other": "其他原因",
}

# Why a verified code still cannot be used (applied by the gateway after the codec decoded it).
ELIGIBILITY_MESSAGES: dict[str, str] = {
    "not_in_roster": "学校名单中未找到您的信息，请核对学号或联系客服。",
    "onsite_shoot_attended": "您已参加学校统一线下拍摄，未经学校允许不能线上采集；如需更换照片请联系学校。",
    "account_bound_to_other_student": "该微信已绑定其他学生，一个微信只能为一名学生采集；请在“我的”中解除绑定后再试。",
    "student_bound_elsewhere": "您的信息已绑定其他微信，请使用原微信操作，或在原微信“我的”中解除绑定，也可联系客服解绑。",
}

FAILURE_MESSAGES: dict[str, str] = {
    "match_failed": "人像比对分数低于{pass_mark:g}分，请更换其他符合要求的照片再试。",
    "registrar_review": "多张照片人像比对均未通过，已转学校学籍部门统一处理。",
    "review_rejected": "审核未通过：{reason}。可免费重拍提交（剩余{left}次）。",
}
