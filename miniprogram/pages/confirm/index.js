const app = getApp()
Page(require('../../logic/confirm')(app.deps()))
