const app = getApp()
Page(require('../../logic/notice')(app.deps()))
