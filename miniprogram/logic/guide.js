// 拍照说明 (seed steps 8-10): what makes a compliant photo; take it yourself, have someone take it
// (「请他人帮拍」, rear camera), or, where the school allows it, choose an ID photo from the album.
const { albumProblems, albumProblemText, ALBUM_LIMITS } = require('../core/rules')
const { call } = require('../core/wxp')
const { loadSchool, errorText, captureSources } = require('./common')
const { uploadPhoto } = require('./photo')

module.exports = function guidePage(deps) {
  const { wx } = deps
  return {
    data: { albumAllowed: false, limits: ALBUM_LIMITS, error: '', busy: false, quota: null },

    async onLoad() {
      try {
        const school = await loadSchool(deps)
        this.setData({ albumAllowed: captureSources(school).includes('album') })
      } catch (err) {
        this.setData({ error: errorText(err) })
      }
    },

    onSelf() {
      wx.navigateTo({ url: '/pages/camera/index?helper=0' })
    },

    onHelper() {
      wx.navigateTo({ url: '/pages/camera/index?helper=1' })
    },

    // The album limits are checked here first, so a photo that cannot pass never uses a standardisation.
    async onAlbum() {
      if (!this.data.albumAllowed || this.data.busy) return
      let picked
      try {
        picked = await call(wx, 'chooseMedia', { count: 1, mediaType: ['image'], sourceType: ['album'], sizeType: ['original'] })
      } catch (err) {
        return
      }
      const file = picked.tempFiles[0]
      this.setData({ busy: true, error: '' })
      try {
        const info = await call(wx, 'getImageInfo', { src: file.tempFilePath })
        const problems = albumProblems({ width: info.width, height: info.height, size: file.size, type: info.type })
        if (problems.length) {
          this.setData({ error: `这张照片不符合要求：${albumProblemText(problems)}。` })
          return
        }
        await uploadPhoto(deps, file.tempFilePath, 'album')
      } catch (err) {
        this.setData({ error: errorText(err) })
      } finally {
        this.setData({ busy: false })
      }
    },
  }
}
