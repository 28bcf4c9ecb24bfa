"""What a student reads when a photo is refused: one place for the Chinese text, keyed by reason code.

The gateway shows these verbatim, so each is short and says what to do next. Codes are stable (they
travel in `photo.rejected.v1` and are listed in docs/imaging.md); the text may be reworded freely.
"""

from __future__ import annotations

REJECTION_MESSAGES: dict[str, str] = {
    # The file itself.
    "empty_file": "照片文件是空的，请重新拍摄或选择照片。",
    "not_an_image": "上传的文件不是照片，请拍摄或选择 JPG 格式的照片。",
    "unsupported_format": "暂不支持该图片格式，请上传 JPG 照片（苹果手机可在“设置-相机-格式”中选择“兼容性最佳”）。",
    "truncated_image": "照片不完整（可能未上传完），请重新上传。",
    "image_too_large": "照片文件过大，请上传原始的手机照片。",
    "image_too_small": "照片尺寸太小，请上传清晰的原图（不要截图或压缩）。",
    "image_missing": "照片已失效，请重新上传。",
    # Faces.
    "no_face": "未检测到人脸，请正对镜头、露出完整面部后重新拍摄。",
    "multiple_faces": "照片中有多个人脸，请单人拍摄，背景中不要有其他人。",
    "face_too_small": "人脸太小或照片不够清晰，请靠近一些拍摄，让头部和肩部占满画面。",
    "head_proportions": "无法按标准裁剪头部（可能因帽子或发型过高），请摘下帽子、整理头发后重拍。",
    "head_turned": "头部偏向一侧，请正对镜头拍摄。",
    "head_pitched": "请不要抬头或低头，保持头部端正、平视镜头。",
    "head_tilted": "头部或相机倾斜过大，请保持头部端正、手机竖直后重拍。",
    "shoulders_tilted": "双肩不水平，请坐正或站直、双肩放平后重拍。",
    "face_off_centre": "人像不在画面中间，请让头部位于画面中央后重拍。",
    "head_cut_off": "头顶被裁掉了，请在头顶上方留出空间后重拍。",
    "body_cut_off": "人像不完整，请拍到双肩以下、两侧留出空间后重拍。",
    "head_top_out_of_range": "头部位置不符合标准，请让头部和肩部完整入镜后重拍。",
    "eye_line_out_of_range": "眼睛位置不符合标准，请让头部和肩部完整入镜后重拍。",
    "face_width_out_of_range": "人脸大小不符合标准，请调整拍摄距离后重拍。",
    # Expression and coverings.
    "eyes_closed": "请自然睁开双眼、平视镜头后重拍。",
    "mouth_open": "请自然闭合嘴巴、表情自然后重拍。",
    "ears_covered": "请将头发拢到耳后，露出双耳后重拍。",
    "eyebrows_covered": "头发遮挡了眉毛或眼睛，请整理刘海后重拍。",
    "headwear": "请摘下帽子、头巾等头饰，露出头顶后重拍。",
    "tinted_glasses": "请不要佩戴有色眼镜或墨镜。",
    "glasses_glare": "眼镜反光，请调整角度或摘下眼镜后重拍。",
    # Light and image quality.
    "uneven_lighting": "面部光线不均匀（阴阳脸），请面向光源、避免侧光后重拍。",
    "face_too_dark": "面部太暗，请在光线充足的地方重拍。",
    "face_too_bright": "面部太亮，请避开强光直射后重拍。",
    "face_overexposed": "面部有过曝的高光，请避开强光或闪光灯后重拍。",
    "blurry": "照片模糊，请保持手机稳定、对焦清晰后重拍。",
    "not_colour": "请上传彩色照片，不要使用黑白照片。",
    # Clothing and background.
    "clothing_like_background": "服装颜色与浅蓝色背景太接近，请换深色或非蓝色的衣服。",
    "background_not_blue": "相册照片须为浅蓝色背景的证件照，请改用拍照或上传浅蓝底证件照。",
    "background_not_uniform": "背景不均匀（有阴影或杂物），请在纯色墙面前重拍。",
    "recaptured": "请直接拍摄本人，不要翻拍屏幕或纸质照片。",
    "beautified": "照片疑似经过美颜处理，请使用未经美颜、滤镜的原始照片。",
    "background_residue": "人像边缘残留了原背景（如窗户、文字、亮边），请在纯色墙面前重拍。",
}


def rejection_message(reason: str) -> str:
    """The student-facing text for a reason code (a generic retake request for an unknown code)."""
    return REJECTION_MESSAGES.get(reason, "照片不符合要求，请按拍摄说明重新拍摄。")
