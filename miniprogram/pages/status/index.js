const app = getApp()
Page(require('../../logic/status')(app.deps()))
