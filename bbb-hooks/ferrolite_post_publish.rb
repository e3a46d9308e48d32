#!/usr/bin/ruby
# frozen_string_literal: true

# Ferrolite's post_publish hook for BigBlueButton (plain Ruby, no gems).
#
# Install as /usr/local/bigbluebutton/core/scripts/post_publish/ferrolite_post_publish.rb
# with its configuration in /usr/local/bigbluebutton/core/scripts/ferrolite.yml.
# BBB runs it after each format is published (`-m <recordID> -f <format>`). It packs every
# format published so far into <recordID>.tar holding <format>/<recordID>/... (exactly what
# Scalelite's hook makes) and delivers it:
#   - upload_url set: POSTs it to the load balancer with a token signed by this server's own
#     secret (no NFS, no ssh keys); retries with back-off; the local tar is removed only after
#     the load balancer answers 2xx, i.e. after the import committed;
#   - otherwise spool_dir: a local/NFS path (copied under a hidden name, then renamed, so the
#     importer never sees half a file) or an rsync target (user@host:path).
# Exit status 0 = delivered (or nothing to do); 1 = not delivered, the tar is kept.

require 'digest'
require 'fileutils'
require 'json'
require 'net/http'
require 'openssl'
require 'optparse'
require 'socket'
require 'uri'
require 'yaml'

def log(msg)
  warn "[ferrolite_post_publish] #{msg}"
end

def b64url(data)
  [data].pack('m0').tr('+/', '-_').delete('=')
end

# An HS256 JWT (RFC 7519), without the jwt gem.
def jwt_hs256(claims, secret)
  head = b64url(JSON.generate({ alg: 'HS256', typ: 'JWT' }))
  body = b64url(JSON.generate(claims))
  sig = b64url(OpenSSL::HMAC.digest('SHA256', secret, "#{head}.#{body}"))
  "#{head}.#{body}.#{sig}"
end

# The BBB server's own secret (bbb-web's securitySalt), unless the config gives one.
def bbb_secret(config)
  return config['secret'].to_s unless config['secret'].to_s.empty?

  %w[/etc/bigbluebutton/bbb-web.properties
     /usr/share/bbb-web/WEB-INF/classes/bigbluebutton.properties].each do |f|
    next unless File.readable?(f)

    File.foreach(f) do |line|
      return Regexp.last_match(1).strip if line =~ /^\s*securitySalt\s*=\s*(.+)$/
    end
  end
  nil
end

# Stops the hook with one clear line (exit 1) instead of a Ruby backtrace.
class ConfigError < StandardError; end

def load_config
  scripts = File.expand_path('..', __dir__)
  path = ENV['FERROLITE_HOOK_CONFIG'] || File.join(scripts, 'ferrolite.yml')
  raise ConfigError, "#{path} is missing or unreadable: install bbb-hooks/ferrolite.yml there" unless File.readable?(path)

  begin
    config = YAML.safe_load(File.read(path)) || {}
  rescue Psych::Exception => e
    raise ConfigError, "#{path} is not valid YAML: #{e.message}"
  end
  raise ConfigError, "#{path} must be a mapping of settings" unless config.is_a?(Hash)

  bbb_yml = config['bigbluebutton_yml'] || File.join(scripts, 'bigbluebutton.yml')
  if (!config['published_dir'] || !config['recording_dir']) && File.readable?(bbb_yml)
    props = YAML.safe_load(File.read(bbb_yml)) || {}
    config['published_dir'] ||= props['published_dir']
    config['recording_dir'] ||= props['recording_dir']
  end
  config['published_dir'] ||= '/var/bigbluebutton/published'
  config['recording_dir'] ||= '/var/bigbluebutton/recording'
  config['work_dir'] ||= '/var/bigbluebutton/recording/ferrolite'
  check_delivery(config, path)
  config
end

# Refuses, before anything is packed, a configuration that cannot deliver: no delivery
# chosen, the shipped example host, or no secret to sign the upload with. (An unedited
# host would otherwise retry for minutes and hold up BBB's publish queue.)
def check_delivery(config, path)
  url = config['upload_url'].to_s
  if url.empty?
    return unless config['spool_dir'].to_s.empty?

    raise ConfigError, "#{path}: set upload_url (HTTPS push) or spool_dir (as Scalelite)"
  end
  host = (URI(url).host rescue nil).to_s
  raise ConfigError, "#{path}: upload_url #{url.inspect} is not an http(s) URL" if host.empty?
  if host == 'example.org' || host.end_with?('.example.org')
    raise ConfigError, "#{path}: upload_url still names the example host #{host}; set your load balancer's"
  end
  return if bbb_secret(config)

  raise ConfigError, "#{path}: no secret: set `secret` or make /etc/bigbluebutton/bbb-web.properties readable"
end

def pack(config, record_id)
  published = config['published_dir']
  formats = Dir.chdir(published) { Dir.glob("*/#{record_id}").sort }
  return nil if formats.empty?

  FileUtils.mkdir_p(config['work_dir'])
  tar = File.join(config['work_dir'], "#{record_id}.tar")
  tmp = "#{tar}.tmp"
  ok = system('tar', '--create', '--file', tmp, '--directory', published, *formats)
  raise "tar failed for #{formats.join(', ')}" unless ok

  File.rename(tmp, tar)
  log "packed #{formats.join(', ')} into #{tar}"
  tar
end

# POSTs the tar; true once the load balancer confirmed the import.
def upload(config, tar, record_id)
  secret = bbb_secret(config)
  raise 'no secret: set `secret` in ferrolite.yml or make bbb-web.properties readable' unless secret

  uri = URI(config['upload_url'])
  issuer = config['server_id'].to_s.empty? ? Socket.gethostname : config['server_id'].to_s
  attempts = (config['max_attempts'] || 8).to_i
  delay = (config['retry_delay'] || 5).to_f
  digest = Digest::SHA256.file(tar).hexdigest
  attempts.times do |i|
    token = jwt_hs256({ iss: issuer, sub: record_id, exp: Time.now.to_i + 3600, sha256: digest }, secret)
    begin
      File.open(tar, 'rb') do |f|
        req = Net::HTTP::Post.new(uri)
        req['Authorization'] = "Bearer #{token}"
        req['Content-Type'] = 'application/x-tar'
        req['Content-Length'] = File.size(tar).to_s
        req.body_stream = f
        http = Net::HTTP.new(uri.host, uri.port)
        http.use_ssl = uri.scheme == 'https'
        http.open_timeout = 10
        http.read_timeout = (config['read_timeout'] || 600).to_i
        res = http.start { |h| h.request(req) }
        code = res.code.to_i
        return true if code.between?(200, 299)

        if code.between?(400, 499) && code != 429 && code != 408
          log "the load balancer refused #{record_id} (HTTP #{code}): #{res.body}"
          return false
        end
        log "attempt #{i + 1}/#{attempts}: HTTP #{code}: #{res.body}"
      end
    rescue StandardError => e
      log "attempt #{i + 1}/#{attempts}: #{e.class}: #{e.message}"
    end
    sleep(delay * (2**i)) if i + 1 < attempts
  end
  false
end

def to_spool(config, tar, record_id)
  spool = config['spool_dir'].to_s
  if spool.include?(':')
    opts = Array(config['extra_rsync_opts'])
    return system('rsync', '--verbose', '--remove-source-files', '--protect-args', *opts, tar, spool)
  end
  FileUtils.mkdir_p(spool)
  tmp = File.join(spool, ".#{record_id}.tar.tmp")
  FileUtils.cp(tar, tmp)
  File.rename(tmp, File.join(spool, "#{record_id}.tar"))
  FileUtils.rm_f(tar)
  true
end

def main
  record_id = nil
  OptionParser.new do |o|
    o.on('-m', '--meeting-id ID') { |v| record_id = v }
    o.on('-f', '--format FORMAT') { |_v| } # every published format is shipped
  end.parse!(ARGV)
  abort 'Meeting ID was not provided (-m <recordID>)' if record_id.to_s.empty?
  abort "not a record id: #{record_id}" unless record_id =~ /\A[A-Za-z0-9_.-]+\z/

  begin
    config = load_config
  rescue ConfigError => e
    log "not delivered: #{e.message}"
    return 1
  end
  tar = pack(config, record_id)
  unless tar
    log "nothing published for #{record_id}"
    return 0
  end
  delivered = if config['upload_url'].to_s.empty?
                to_spool(config, tar, record_id)
              else
                ok = upload(config, tar, record_id)
                FileUtils.rm_f(tar) if ok
                ok
              end
  unless delivered
    log "#{record_id} NOT delivered; the tar stays at #{tar}"
    return 1
  end
  log "#{record_id} delivered"
  system('bbb-record', '--delete', record_id) if config['delete_recording']
  done = File.join(config['recording_dir'], 'status', 'published', "#{record_id}-sender.done")
  FileUtils.mkdir_p(File.dirname(done))
  File.write(done, "Published #{record_id}")
  0
end

exit(main) if $PROGRAM_NAME == __FILE__
