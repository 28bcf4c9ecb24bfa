// The camera (seed steps 9-10): the <camera> component with a live guide drawn from the CHSI geometry
// (head-top band, eye line, face-width band, shoulders), front/rear switch, and a helper mode in which
// someone else holds the phone (rear camera, bigger hints for the helper).
const { guideGeometry } = require('../core/rules')
const { MESSAGES } = require('../core/messages')
const { errorText } = require('./common')
const { uploadPhoto } = require('./photo')

module.exports = function cameraPage(deps) {
  const { wx } = deps
  return {
    data: { position: 'front', helper: false, guide: guideGeometry(750), preview: '', denied: false, error: '', busy: false },

    onLoad(query) {
      const helper = String((query && query.helper) || '0') === '1'
      this.setData({ helper, position: helper ? 'back' : 'front' })
      wx.authorize({
        scope: 'scope.camera',
        success: () => this.setData({ denied: false }),
        fail: () => this.setData({ denied: true, error: MESSAGES.camera_denied }),
      })
    },

    onSwitch() {
      this.setData({ position: this.data.position === 'front' ? 'back' : 'front' })
    },

    onCameraError() {
      this.setData({ denied: true, error: MESSAGES.camera_denied })
    },

    onOpenSetting() {
      wx.openSetting({ success: res => this.setData({ denied: !(res.authSetting || {})['scope.camera'], error: '' }) })
    },

    onTake() {
      return new Promise(resolve => {
        wx.createCameraContext().takePhoto({
          quality: 'high',
          success: res => {
            this.setData({ preview: res.tempImagePath, error: '' })
            resolve(res.tempImagePath)
          },
          fail: () => {
            this.setData({ error: '拍摄失败，请重试。' })
            resolve('')
          },
        })
      })
    },

    // Retakes before 「确认制作」 are free and unlimited (seed step 11).
    onRetake() {
      this.setData({ preview: '' })
    },

    async onConfirm() {
      if (!this.data.preview || this.data.busy) return
      this.setData({ busy: true, error: '' })
      try {
        await uploadPhoto(deps, this.data.preview, 'camera')
      } catch (err) {
        this.setData({ error: errorText(err) })
      } finally {
        this.setData({ busy: false })
      }
    },
  }
}
