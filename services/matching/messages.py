"""What a student or an operator reads about a face comparison: one place for the Chinese text."""

from __future__ import annotations

# Reasons of match.scored.v1 when no comparison could be made (`<photo>_<problem>`), for the student.
REASON_MESSAGES: dict[str, str] = {
    "photo_missing": "照片文件已失效，请重新提交照片。",
    "photo_unreadable": "照片无法读取，请重新拍摄或上传后再提交。",
    "photo_too_large": "照片文件过大，请重新拍摄或上传后再提交。",
    "photo_no_face": "照片中未检测到人脸，请换一张正面免冠、五官清晰的照片。",
    "photo_multiple_faces": "照片中检测到多张人脸，请换一张只有本人的照片。",
    "photo_face_too_small": "照片中的人脸过小，请换一张人脸清晰、占比合适的照片。",
    # The admission photo submitted again (seed: 不使用与录取相同的照片): the student's to fix.
    "admission_photo_reused": "提交的照片与录取照片相同，请重新拍摄本人近期照片。",
    # The admission photo cannot be replaced by the student (seed step 10): these go to the registrar.
    "admission_photo_missing": "未找到你的录取照片，已转学校学籍部门人工核验，请留意通知或联系客服。",
    "admission_photo_unreadable": "录取照片无法读取，已转学校学籍部门人工核验，请留意通知或联系客服。",
    "admission_photo_too_large": "录取照片无法读取，已转学校学籍部门人工核验，请留意通知或联系客服。",
    "admission_photo_no_face": "录取照片中未检测到人脸，已转学校学籍部门人工核验，请留意通知或联系客服。",
    "admission_photo_multiple_faces": "录取照片中有多张人脸，已转学校学籍部门人工核验，请留意通知或联系客服。",
    "admission_photo_face_too_small": "录取照片中的人脸过小，已转学校学籍部门人工核验，请留意通知或联系客服。",
}

# The admission-photo check at roster import, for the operator who imports (by problem code).
ADMISSION_CHECK_MESSAGES: dict[str, str] = {
    "unreadable": "录取照片无法读取（文件损坏或不是图片），请重新导入。",
    "too_large": "录取照片文件或尺寸过大，请导入原始录取照片。",
    "no_face": "录取照片中未检测到人脸，请核对照片后重新导入。",
    "multiple_faces": "录取照片中有多张人脸，请核对照片后重新导入。",
    "face_too_small": "录取照片中的人脸过小，无法用于人脸比对，请导入清晰的原始录取照片。",
}


def score_message(score: float, pass_mark: float, *, needs_registrar: bool, failed_photos: int) -> str:
    """The student's line for a computed score (seed step 11)."""
    shown = f"{score:.1f}".rstrip("0").rstrip(".")
    mark = f"{pass_mark:.1f}".rstrip("0").rstrip(".")
    if score >= pass_mark:
        return f"人脸比对通过（{shown}分），照片将进入人工审核。"
    if needs_registrar:
        return (
            f"人脸比对未通过（{shown}分，需{mark}分及以上）。已有{failed_photos}张合规照片比对未通过，"
            "已转学校学籍部门人工核验，请留意通知。"
        )
    return f"人脸比对未通过（{shown}分，需{mark}分及以上），请换一张本人近期的合规照片再试。"


def reason_message(reason: str) -> str:
    return REASON_MESSAGES[reason]
