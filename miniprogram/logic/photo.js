// Upload a photo (one standardisation): one intent per picture, so a retried upload of the same picture
// never takes a second slot of the day's three.
async function uploadPhoto({ wx, api }, filePath, source) {
  const intent = `photo:${filePath}`
  const accepted = await api.upload('/api/v1/photos', filePath, { name: 'image', formData: { source }, intent })
  api.finishIntent(intent)
  wx.redirectTo({ url: `/pages/result/index?photo_id=${accepted.photo_id}` })
  return accepted
}

module.exports = { uploadPhoto }
