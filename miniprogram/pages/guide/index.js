const app = getApp()
Page(require('../../logic/guide')(app.deps()))
