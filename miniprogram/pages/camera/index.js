const app = getApp()
Page(require('../../logic/camera')(app.deps()))
