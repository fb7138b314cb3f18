"""Official documents in GB/T 9704-2012 layout.

layout        every number of the standard, once, with its clause
styles        the named styles (formatting lives there and in the template's styles.xml)
officialdoc   OfficialDocument, Annex, AnnexTable, render_official_document(): any 通知 or 通报
notice        render_notice(): the campaign's notice
preview       .docx → PDF → PNG with LibreOffice and poppler, for looking at a result
"""
