from django.contrib import admin

from .models import GuideFile, GuideTrial, Placement, TrialKnee, TrialMember, VirtualRun

admin.site.register(GuideTrial)
admin.site.register(TrialKnee)
admin.site.register(TrialMember)
admin.site.register(Placement)
admin.site.register(GuideFile)
admin.site.register(VirtualRun)
